-- Fewer index writes per delivery, which a join storm makes thousands of a
-- second.
--
-- The due query reads `webhook_deliveries_turns` (status, endpoint, due
-- time) since 0014; nothing reads this older index any more, yet every
-- insert and every change of status wrote to it.
DROP INDEX webhook_deliveries_due;
-- A claim only sets `locked_until`, which no index holds, so with free room
-- on its page PostgreSQL updates the row in place (a HOT update) instead of
-- writing a new version and an entry in each index. Pages filled to 100%
-- (the default) leave no room. The setting applies to pages written from
-- now on (an outbox is mostly rows of the last days, so that is most of
-- it), and the table takes about twice the pages.
ALTER TABLE webhook_deliveries SET (fillfactor = 50);
