-- coco SQLite schema, version 3: retention (Store.prune, src/store/sqlite/retention.ts).
-- Ended roots by when they ended: a prune reads the oldest first and stops at its cutoff, so a
-- pass costs what it deletes, not a scan of the commands kept. Partial: a root enters the index
-- when it stops being active (settled), so running work and children cost nothing here.
CREATE INDEX commands_ended_roots ON commands (ended_at) WHERE parent_id IS NULL AND active = 0;
