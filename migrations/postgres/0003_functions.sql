-- Functions: versions with their component bytes, the job outbox of asynchronous
-- handlers, every invocation, and the per-project key-value store.

-- What a project's `participant.joining` hook does when a function fails or times out.
ALTER TABLE projects ADD COLUMN function_failure_policy TEXT NOT NULL DEFAULT 'open';

CREATE TABLE functions (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects(id),
    name            TEXT NOT NULL,
    -- The version that runs; NULL runs nothing.
    active_version  BIGINT,
    latest_version  BIGINT NOT NULL,
    -- Events up to this project sequence number predate the function and do not run it.
    from_seq        BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    deleted_at      BIGINT
);
CREATE UNIQUE INDEX functions_name ON functions (project_id, name) WHERE deleted_at IS NULL;

CREATE TABLE function_versions (
    function_id     TEXT NOT NULL REFERENCES functions(id),
    version         BIGINT NOT NULL,
    -- SHA-256 of the component, hex: the key of compiled artifacts.
    digest          TEXT NOT NULL,
    size_bytes      BIGINT NOT NULL,
    -- JSON array of event type patterns; `participant.joining` is the synchronous hook.
    events          TEXT NOT NULL,
    component       BYTEA NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (function_id, version)
);

CREATE TABLE function_jobs (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects(id),
    function_id     TEXT NOT NULL REFERENCES functions(id),
    event_id        TEXT NOT NULL,
    event_seq       BIGINT NOT NULL,
    -- Jobs with the same key run in event order (the room sid, or '').
    order_key       TEXT NOT NULL,
    -- `pending` or `done`.
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    -- A node running it holds it until this time; afterwards anyone may take it again.
    locked_until    BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX function_jobs_once ON function_jobs (function_id, event_id);
CREATE INDEX function_jobs_due ON function_jobs (status, next_attempt_at);
CREATE INDEX function_jobs_order ON function_jobs (function_id, order_key, status, event_seq);

CREATE TABLE function_invocations (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects(id),
    function_id     TEXT NOT NULL REFERENCES functions(id),
    version         BIGINT NOT NULL,
    -- `joining`, `event` or `invoke`.
    trigger_kind    TEXT NOT NULL,
    event_id        TEXT,
    event_type      TEXT NOT NULL,
    -- `ok`, `error`, `trap`, `timeout`, `out_of_fuel`, `out_of_memory`, `stack_overflow`, `busy`.
    outcome         TEXT NOT NULL,
    -- The decision of a `participant.joining` hook (`allow`, `deny`, `admit`).
    decision        TEXT,
    error           TEXT,
    duration_us     BIGINT NOT NULL,
    fuel_used       BIGINT NOT NULL,
    -- JSON array of {level, message}.
    logs            TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX function_invocations_function ON function_invocations (function_id, id);

CREATE TABLE function_kv (
    project_id      TEXT NOT NULL REFERENCES projects(id),
    key             TEXT NOT NULL,
    value           TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (project_id, key)
);
