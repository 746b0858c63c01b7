-- Each participant's connection every few seconds while it is in a room
-- (the room observer's measures), for the call's page in the dashboard and
-- GET /v1/usage/sessions/{sid}/quality. One row per participant per
-- interval; purged by their own age after the retention period (a session
-- still open past it keeps only its recent samples).
CREATE TABLE quality_samples (
    participant_sid TEXT NOT NULL,
    at              BIGINT NOT NULL,
    project_id      TEXT NOT NULL,
    room_sid        TEXT NOT NULL,
    -- excellent, good, poor or lost
    quality         TEXT NOT NULL,
    publish_bps     BIGINT NOT NULL,
    subscribe_bps   BIGINT NOT NULL,
    loss_per_mille  BIGINT NOT NULL,
    rtt_ms          BIGINT,
    PRIMARY KEY (participant_sid, at)
);
CREATE INDEX quality_samples_age ON quality_samples (at);
