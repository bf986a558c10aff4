-- coco PostgreSQL schema, version 7: retention (Store.prune, src/store/postgres/retention.ts).
-- Ended roots by when they ended: a prune reads the oldest first and stops at its cutoff, so a
-- pass costs what it deletes, not a scan of the commands kept. Partial: a root enters the index
-- when it stops being active (settled), so running work and children cost nothing here. Built
-- under the migration's lock like every statement here (not CONCURRENTLY, which cannot run in a
-- transaction): on a large existing table, migrate before the nodes start (`coco migrate`).
CREATE INDEX commands_ended_roots ON :COCO_SCHEMA.commands (ended_at, id) WHERE parent_id IS NULL AND NOT active;
