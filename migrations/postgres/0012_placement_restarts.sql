-- When the rooms of a lost node were restarted (room.finished, then
-- room.started under a new sid), so that the meter declaring the node lost
-- and a router moving the room elsewhere restart each room once.

ALTER TABLE room_placements ADD COLUMN restarted_at BIGINT;
