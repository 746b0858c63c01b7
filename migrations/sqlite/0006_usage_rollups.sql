-- Rollups the usage API reads, so a month of a project with millions of
-- sessions sums hundreds of rows rather than millions: per project, meter and
-- hour (the series and the invoice), and per project, meter, UTC day and room
-- (the breakdown by room). Both grow in the transaction that appends to the
-- ledger, exactly when `usage_hourly` does.

CREATE TABLE usage_project_hourly (
    project_id    TEXT NOT NULL,
    meter         TEXT NOT NULL,
    hour          INTEGER NOT NULL,
    quantity      INTEGER NOT NULL,
    PRIMARY KEY (project_id, meter, hour)
);
INSERT INTO usage_project_hourly (project_id, meter, hour, quantity)
    SELECT project_id, meter, hour, SUM(quantity) FROM usage_hourly GROUP BY project_id, meter, hour;

CREATE TABLE usage_room_daily (
    project_id    TEXT NOT NULL,
    meter         TEXT NOT NULL,
    day           INTEGER NOT NULL,
    room_name     TEXT NOT NULL,
    quantity      INTEGER NOT NULL,
    PRIMARY KEY (project_id, meter, day, room_name)
);
INSERT INTO usage_room_daily (project_id, meter, day, room_name, quantity)
    SELECT project_id, meter, hour - hour % 86400000000, room_name, SUM(quantity)
    FROM usage_hourly GROUP BY project_id, meter, hour - hour % 86400000000, room_name;

-- The open sessions of a project, and session pages by room or overall.
CREATE INDEX usage_sessions_project_open ON usage_sessions (project_id) WHERE left_at IS NULL;
CREATE INDEX usage_sessions_project_room ON usage_sessions (project_id, room_name, id);
CREATE INDEX usage_sessions_project_id ON usage_sessions (project_id, id);
