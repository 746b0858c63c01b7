-- The due queries take each project's (each endpoint's) next jobs in turns:
-- one index probe per project finds who has any pending, and each one's
-- backlog is read in order only as far as its turns, not ranked whole.
CREATE INDEX function_jobs_turns ON function_jobs (status, project_id, next_attempt_at, event_seq);
CREATE INDEX webhook_deliveries_turns ON webhook_deliveries (status, webhook_id, next_attempt_at, event_seq);
