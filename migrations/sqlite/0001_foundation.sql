-- Projects, API keys, rooms, the append-only event log and idempotency records.
-- Times are microseconds since the Unix epoch so both backends store them alike.

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    -- Last sequence number handed to this project's events.
    event_seq   INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL REFERENCES projects(id),
    -- SHA-256 of the secret: bearer authentication looks keys up by it.
    secret_hash   BLOB NOT NULL UNIQUE,
    -- The secret sealed with the server's master key: HS256 access tokens need it to verify.
    sealed_secret BLOB NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);
CREATE INDEX api_keys_project ON api_keys (project_id);

CREATE TABLE rooms (
    sid              TEXT PRIMARY KEY,
    project_id       TEXT NOT NULL REFERENCES projects(id),
    name             TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    empty_timeout_s  INTEGER NOT NULL,
    max_participants INTEGER NOT NULL,
    metadata         TEXT NOT NULL DEFAULT '',
    region           TEXT,
    UNIQUE (project_id, name)
);

CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id),
    seq         INTEGER NOT NULL,
    type        TEXT NOT NULL,
    room_name   TEXT,
    room_sid    TEXT,
    created_at  INTEGER NOT NULL,
    body        TEXT NOT NULL,
    UNIQUE (project_id, seq)
);
CREATE INDEX events_room ON events (project_id, room_name, seq);
CREATE INDEX events_type ON events (project_id, type, seq);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the events table is append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the events table is append-only'); END;

CREATE TABLE idempotency_keys (
    project_id   TEXT NOT NULL REFERENCES projects(id),
    key          TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    -- NULL while the first request is still being handled.
    status       INTEGER,
    response     BLOB,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (project_id, key)
);
