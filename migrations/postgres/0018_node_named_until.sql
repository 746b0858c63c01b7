-- The newest time the API named a node for a join that has reached it (ms
-- since the Unix epoch, from the token's `named_at`): the router counts the
-- joins it named the node for after it as still on their way.
ALTER TABLE nodes ADD COLUMN load_named_until BIGINT;
