-- Recordings: one row per recording of a room incarnation. `spec` is the
-- request as JSON; `files` is the list of files written so far, as JSON,
-- updated while recording so a node that dies leaves its partial files
-- listed. `node_id` is the media node writing it. Times are microseconds.

CREATE TABLE recordings (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects(id),
    room_sid     TEXT NOT NULL,
    room_name    TEXT NOT NULL,
    spec         TEXT NOT NULL,
    status       TEXT NOT NULL,
    error        TEXT,
    node_id      TEXT,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    ended_at     INTEGER,
    duration_ms  INTEGER NOT NULL DEFAULT 0,
    -- While a composite is being made: how far, in thousandths.
    progress     INTEGER,
    files        TEXT NOT NULL DEFAULT '[]'
);

CREATE INDEX recordings_project ON recordings (project_id, id);
CREATE INDEX recordings_room ON recordings (project_id, room_sid);
CREATE INDEX recordings_node ON recordings (node_id, status);

-- Rooms created with `record: true` record every track from the first one published.
ALTER TABLE rooms ADD COLUMN record INTEGER NOT NULL DEFAULT 0;
