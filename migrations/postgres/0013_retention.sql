-- Retention: the janitor deletes what is older than the configured period.
-- The event log stays append-only for everyone else: a DELETE on `events` is
-- refused unless the deleting transaction itself holds a row in
-- `log_purges`, which only the janitor inserts (and removes before it
-- commits, so no other transaction ever sees one).
CREATE TABLE log_purges (
    started_at  BIGINT NOT NULL
);

CREATE OR REPLACE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM log_purges) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the events table is append-only';
END;
$$;

-- What the janitor looks up by age.
CREATE INDEX events_age ON events (created_at);
CREATE INDEX webhook_deliveries_age ON webhook_deliveries (updated_at) WHERE status <> 'pending';
CREATE INDEX function_jobs_age ON function_jobs (updated_at) WHERE status = 'done';
CREATE INDEX function_invocations_age ON function_invocations (created_at);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
CREATE INDEX usage_sessions_age ON usage_sessions (left_at) WHERE left_at IS NOT NULL;
