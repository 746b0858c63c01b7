-- Many nodes behind one control plane: what each node runs and where, the load
-- it reports with every heartbeat, whether it is draining, and which media
-- node hosts each room. Times are microseconds.

ALTER TABLE nodes ADD COLUMN role TEXT NOT NULL DEFAULT 'all';
ALTER TABLE nodes ADD COLUMN region TEXT NOT NULL DEFAULT 'local';
-- The URL clients reach the node at; signaling is at /rtc under it.
ALTER TABLE nodes ADD COLUMN url TEXT NOT NULL DEFAULT '';
-- Set by `switchboard node drain`: the node takes no new rooms.
ALTER TABLE nodes ADD COLUMN draining_at BIGINT;
ALTER TABLE nodes ADD COLUMN load_rooms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN load_participants BIGINT NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN load_tracks BIGINT NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN load_forwarded_bps BIGINT NOT NULL DEFAULT 0;
-- Share of the machine's CPU, 0 to 1.
ALTER TABLE nodes ADD COLUMN load_cpu DOUBLE PRECISION NOT NULL DEFAULT 0;

-- The media node that hosts (or will host) a room, by name: placed when the
-- first token for the room is issued, replaced only once that node is dead.
CREATE TABLE room_placements (
    project_id  TEXT NOT NULL REFERENCES projects (id),
    room_name   TEXT NOT NULL,
    node_id     TEXT NOT NULL REFERENCES nodes (id),
    placed_at   BIGINT NOT NULL,
    PRIMARY KEY (project_id, room_name)
);
CREATE INDEX room_placements_node ON room_placements (node_id);
