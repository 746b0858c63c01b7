-- Webhook endpoints, the delivery outbox with every attempt, and consumers' durable cursors.

CREATE TABLE webhooks (
    id                   TEXT PRIMARY KEY,
    project_id           TEXT NOT NULL REFERENCES projects(id),
    url                  TEXT NOT NULL,
    description          TEXT NOT NULL DEFAULT '',
    -- JSON array of event type patterns (`room.*`, `participant.joined`, `*`).
    events               TEXT NOT NULL,
    enabled              BIGINT NOT NULL,
    -- Why the server disabled it, when it did.
    disabled_reason      TEXT,
    sealed_secret        BYTEA NOT NULL,
    -- After a rotation the old secret keeps signing alongside until this time.
    previous_sealed_secret BYTEA,
    previous_expires_at  BIGINT,
    -- First failed attempt since the last success; five days of it disables the endpoint.
    failing_since        BIGINT,
    -- Events up to this project sequence number predate the endpoint and are not sent to it.
    from_seq             BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    deleted_at           BIGINT
);
CREATE INDEX webhooks_project ON webhooks (project_id, id);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects(id),
    webhook_id      TEXT NOT NULL REFERENCES webhooks(id),
    event_id        TEXT NOT NULL,
    event_seq       BIGINT NOT NULL,
    event_type      TEXT NOT NULL,
    -- Deliveries with the same key go to an endpoint in event order (the room sid, or '').
    order_key       TEXT NOT NULL,
    -- `event` (fan-out from the log) or `replay` (asked for through the API).
    origin          TEXT NOT NULL,
    -- `pending`, `succeeded` or `failed`.
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    -- A node sending it holds it until this time; afterwards anyone may take it again.
    locked_until    BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX webhook_deliveries_once ON webhook_deliveries (webhook_id, event_id) WHERE origin = 'event';
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (webhook_id, order_key, status, event_seq);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (project_id, event_id);

CREATE TABLE webhook_attempts (
    id             TEXT PRIMARY KEY,
    delivery_id    TEXT NOT NULL REFERENCES webhook_deliveries(id),
    attempted_at   BIGINT NOT NULL,
    -- NULL when no HTTP response came back.
    status_code    BIGINT,
    latency_ms     BIGINT NOT NULL,
    -- The first 2 KiB of the response body.
    response_body  TEXT NOT NULL,
    error          TEXT,
    succeeded      BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, attempted_at);

-- How far each consumer of the event log (webhooks, functions, billing) has read each project's log.
CREATE TABLE consumer_cursors (
    consumer    TEXT NOT NULL,
    project_id  TEXT NOT NULL REFERENCES projects(id),
    seq         BIGINT NOT NULL,
    PRIMARY KEY (consumer, project_id)
);
