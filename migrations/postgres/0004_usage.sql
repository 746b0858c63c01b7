-- Metering: the nodes that host sessions (and their heartbeats), the participant
-- sessions the meter builds from the event log, the append-only usage ledger
-- and its hourly rollup. Times and time quantities are microseconds.

CREATE TABLE nodes (
    id            TEXT PRIMARY KEY,
    started_at    BIGINT NOT NULL,
    heartbeat_at  BIGINT NOT NULL,
    -- Set when the node stopped cleanly, or when the meter closed its sessions
    -- after it fell silent.
    stopped_at    BIGINT
);

-- One participant session (a participant sid), open until `left_at` is set.
CREATE TABLE usage_sessions (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL REFERENCES projects(id),
    room_sid      TEXT NOT NULL,
    room_name     TEXT NOT NULL,
    identity      TEXT NOT NULL,
    node_id       TEXT,
    joined_at     BIGINT NOT NULL,
    left_at       BIGINT,
    leave_reason  TEXT,
    -- 1 once video was published in the room while the session was in it.
    video         BIGINT NOT NULL DEFAULT 0,
    -- Time billed: the session less what the same identity's overlapping
    -- sessions in the room were already billed for.
    billed_us     BIGINT
);
CREATE INDEX usage_sessions_project ON usage_sessions (project_id, joined_at);
CREATE INDEX usage_sessions_identity ON usage_sessions (room_sid, identity);
CREATE INDEX usage_sessions_open ON usage_sessions (node_id) WHERE left_at IS NULL;

-- Video tracks being published now, by room: a session joining such a room is video.
CREATE TABLE usage_video_tracks (
    track_sid     TEXT PRIMARY KEY,
    room_sid      TEXT NOT NULL
);
CREATE INDEX usage_video_tracks_room ON usage_video_tracks (room_sid);

-- The usage ledger: what each source (a session, a recording, an invocation)
-- added to a meter in one UTC hour. Rows are only ever inserted.
CREATE TABLE usage_ledger (
    source        TEXT NOT NULL,
    meter         TEXT NOT NULL,
    hour          BIGINT NOT NULL,
    project_id    TEXT NOT NULL REFERENCES projects(id),
    room_name     TEXT NOT NULL,
    quantity      BIGINT NOT NULL,
    recorded_at   BIGINT NOT NULL,
    PRIMARY KEY (source, meter, hour)
);
CREATE FUNCTION usage_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the usage ledger is append-only';
END;
$$;
CREATE TRIGGER usage_ledger_no_update BEFORE UPDATE OR DELETE ON usage_ledger
    FOR EACH ROW EXECUTE FUNCTION usage_ledger_append_only();

-- The ledger summed by project, meter, hour and room, kept in the same
-- transaction as each ledger insert: reports read this.
CREATE TABLE usage_hourly (
    project_id    TEXT NOT NULL REFERENCES projects(id),
    meter         TEXT NOT NULL,
    hour          BIGINT NOT NULL,
    room_name     TEXT NOT NULL,
    quantity      BIGINT NOT NULL,
    PRIMARY KEY (project_id, meter, hour, room_name)
);

-- The plan a project is billed on; NULL is the configured default plan.
ALTER TABLE projects ADD COLUMN plan TEXT;
