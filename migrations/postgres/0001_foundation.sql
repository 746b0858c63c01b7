-- Projects, API keys, rooms, the append-only event log and idempotency records.
-- Times are microseconds since the Unix epoch (BIGINT) so both backends store them alike.

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    -- Last sequence number handed to this project's events.
    event_seq   BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL REFERENCES projects(id),
    -- SHA-256 of the secret: bearer authentication looks keys up by it.
    secret_hash   BYTEA NOT NULL UNIQUE,
    -- The secret sealed with the server's master key: HS256 access tokens need it to verify.
    sealed_secret BYTEA NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX api_keys_project ON api_keys (project_id);

CREATE TABLE rooms (
    sid              TEXT PRIMARY KEY,
    project_id       TEXT NOT NULL REFERENCES projects(id),
    name             TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    empty_timeout_s  BIGINT NOT NULL,
    max_participants BIGINT NOT NULL,
    metadata         TEXT NOT NULL DEFAULT '',
    region           TEXT,
    UNIQUE (project_id, name)
);

CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id),
    seq         BIGINT NOT NULL,
    type        TEXT NOT NULL,
    room_name   TEXT,
    room_sid    TEXT,
    created_at  BIGINT NOT NULL,
    body        TEXT NOT NULL,
    UNIQUE (project_id, seq)
);
CREATE INDEX events_room ON events (project_id, room_name, seq);
CREATE INDEX events_type ON events (project_id, type, seq);

CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the events table is append-only';
END;
$$;
CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();

CREATE TABLE idempotency_keys (
    project_id   TEXT NOT NULL REFERENCES projects(id),
    key          TEXT NOT NULL,
    request_hash BYTEA NOT NULL,
    -- NULL while the first request is still being handled.
    status       BIGINT,
    response     BYTEA,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (project_id, key)
);
