-- A delivery is due only when no earlier delivery of its participant (or
-- room) to the same endpoint still waits for its first attempt. This index
-- holds exactly those waiting rows, so that check is one probe; the wider
-- index it replaces let the planner, on a fast-growing table, scan an
-- endpoint's whole backlog for each candidate (99 ms a query at 18,000
-- deliveries pending in the join-storm benchmark).
DROP INDEX webhook_deliveries_order;
CREATE INDEX webhook_deliveries_heads ON webhook_deliveries (webhook_id, order_key, event_seq)
    WHERE status = 'pending' AND attempts = 0;
