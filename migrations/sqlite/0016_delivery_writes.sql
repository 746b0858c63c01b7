-- The due query reads `webhook_deliveries_turns` (status, endpoint, due
-- time) since 0014; nothing reads this older index any more, yet every
-- insert and every change of status wrote to it.
DROP INDEX webhook_deliveries_due;
