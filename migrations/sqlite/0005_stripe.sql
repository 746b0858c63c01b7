-- Stripe: each project's customer and subscription, the usage reports sent to
-- Stripe (one row per meter and window, written before the call so a retry
-- sends the same quantity under the same idempotency key), the Stripe events
-- received, and project suspension. Times are microseconds.

ALTER TABLE projects ADD COLUMN suspended_reason TEXT;
ALTER TABLE projects ADD COLUMN suspended_at INTEGER;

CREATE TABLE stripe_customers (
    project_id       TEXT PRIMARY KEY REFERENCES projects(id),
    customer_id      TEXT NOT NULL UNIQUE,
    subscription_id  TEXT,
    -- Counts the subscriptions forgotten after a cancellation, so the next
    -- one is created under a new idempotency key.
    generation       INTEGER NOT NULL DEFAULT 0,
    -- `created` of the newest Stripe event applied to the project, so an
    -- older event arriving late does not undo a newer one.
    last_event_at    INTEGER NOT NULL DEFAULT 0,
    linked_at        INTEGER NOT NULL
);

CREATE TABLE stripe_reports (
    project_id       TEXT NOT NULL REFERENCES projects(id),
    -- A meter name, or `minimum` for the top-up to the plan's minimum.
    meter            TEXT NOT NULL,
    period           TEXT NOT NULL,
    window_end       INTEGER NOT NULL,
    -- Billed units (minutes, invocations) this report adds.
    quantity         INTEGER NOT NULL,
    -- Cents this report adds (invoice items).
    amount_cents     INTEGER NOT NULL,
    -- `invoice_item` or `meter_event`.
    kind             TEXT NOT NULL,
    -- `pending`, `sent`, or `empty` (nothing to report in this window).
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    next_attempt_at  INTEGER NOT NULL,
    stripe_id        TEXT,
    created_at       INTEGER NOT NULL,
    sent_at          INTEGER,
    PRIMARY KEY (project_id, meter, period, window_end)
);
CREATE INDEX stripe_reports_pending ON stripe_reports (next_attempt_at) WHERE status = 'pending';

CREATE TABLE stripe_events (
    id               TEXT PRIMARY KEY,
    type             TEXT NOT NULL,
    project_id       TEXT,
    created          INTEGER NOT NULL,
    received_at      INTEGER NOT NULL,
    -- What the event did: `suspended`, `resumed`, `ignored`, `stale`, `unknown_customer`.
    outcome          TEXT NOT NULL,
    payload          TEXT NOT NULL
);
