-- coco PostgreSQL schema, version 14: the status-history trigger of command updates (0008) plans
-- its join as it should.
--
-- The apply connection turns hash and merge joins off (applier.ts: a batch's statements are keyed
-- lookups, and the planner would otherwise hash a whole large table). That setting reached the
-- trigger's own query, which joins the statement's new rows to its old rows — two transition
-- tables, with no index: with hash joins off it was a nested loop over both, quadratic in the
-- batch. 2,500 command updates in one statement took 335–441 ms, against 32–38 ms with the join
-- hashed and 19 ms with no history at all (BENCHMARKS.md, issue 15): a batch of a busy node spent
-- most of its server time there. The function now plans with its own settings.
ALTER FUNCTION :COCO_SCHEMA.commands_history_updated() SET enable_hashjoin = on;
ALTER FUNCTION :COCO_SCHEMA.commands_history_updated() SET enable_mergejoin = on;
