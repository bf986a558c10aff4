-- coco SQLite schema, version 8: a command's first and terminal statuses read from its own row,
-- not from history rows (as PostgreSQL 0018 and 0019).
--
-- Every command inserted wrote a row into command_status_history (0004's insert trigger), and
-- every command ended another (its update trigger): two rows of a WITHOUT ROWID table per
-- one-task command or fan-out child, written by the writer thread alongside the command's own.
-- Both repeat the command row:
-- - the first status: commands are only ever inserted by `insertCommand` (statements.ts), which
--   now also writes the status and updated_at it inserts into first_status and first_at — the
--   values the trigger wrote — from the same bound values (no parameter added). The insert
--   trigger is dropped.
-- - a terminal status (succeeded, failed, cancelled) is never left (the transition tables have no
--   edge out of one), and the engine stores it with the command's end (engine/live.ts `end` sets
--   endedAt and updatedAt together): it is the row's `status` at coalesce(ended_at, updated_at).
--   The update trigger no longer writes one. Its WHEN spells the test as three `<>`: `NOT IN` a
--   list of three constants has SQLite build an ephemeral index of them each time the trigger's
--   program runs, once per updated row (+18 k instructions per row, callgrind).
-- `getStatusHistory` (statements.ts) reads the history rows, the row's first status and its
-- terminal status, each of the last two unless a history row of that status is there: commands
-- stored before this migration (first_status NULL, their statuses in history rows; the ones still
-- active end after it and have their end read from the row) and rows left by hand read as before.
-- The statuses between (waiting after pending, aborting, compensating) are history rows still;
-- the delete trigger (retention) is unchanged.
--
-- Measured: callgrind, 20-row runs of 100 commands per transaction in one thread — SQLite's work
-- (sqlite3_step) per command insert 20.1 k -> 13.6 k instructions, per command end 20.1 k ->
-- 17.0 k. The engine's writer thread under callgrind (bench/trees.ts, 3,000 trees): fan-out
-- 4,418 -> 3,929 M instructions (-11 %, -163 k per parent; mean of two pairs, SQLite's part
-- 2,751 -> 2,266 M in both), chain 3,855 -> 3,482 M (-10 %, one pair).
-- Natively (scripts/bench-pairs.mjs, 8 interleaved pairs, load 1.1–2.2): the writer thread's CPU
-- per fan-out parent 159.6 -> 143.7 µs, per chain 100.8 -> 87.3 µs (medians; lower in 7 of 8
-- pairs each); one-task 48.8 k -> 54.2 k commands/s. A second set in a busier window (the raw
-- limit 23 k commands/s, not 32 k) could not resolve it (lower in 5 of 8): the counts above are
-- the figures to trust.
--
-- No writer of an older release inserts beside this one: a file has one owner at a time
-- (coco_owner, ownership.ts), a process whose code knows fewer migrations than the file holds is
-- refused when it opens it, and a file with a live owner is not migrated (connection.ts
-- `migrateDatabase`: a node of this release started before the older one stopped is refused
-- with STORE_IN_USE and changes nothing). So no insert trigger is kept for rows without a first
-- status, as PostgreSQL 0018 keeps one for its rolling upgrades; here it would also cost most of
-- what dropping the trigger saves: SQLite runs a row trigger's program for every row to test its
-- WHEN (6.4 k of the 7.8 k instructions per row the dropped trigger cost, callgrind), and any
-- INSERT trigger makes `insertCommand`'s INSERT … SELECT go through a temporary table.
ALTER TABLE commands ADD COLUMN first_status TEXT;
ALTER TABLE commands ADD COLUMN first_at INTEGER;

DROP TRIGGER commands_status_history_insert;

DROP TRIGGER commands_status_history_update;
CREATE TRIGGER commands_status_history_update
AFTER UPDATE OF status ON commands
WHEN OLD.status <> NEW.status
  AND NEW.status <> 'succeeded' AND NEW.status <> 'failed' AND NEW.status <> 'cancelled'
BEGIN
  INSERT INTO command_status_history (command_id, status, at)
    VALUES (NEW.id, NEW.status, NEW.updated_at)
    ON CONFLICT DO NOTHING;
END;
