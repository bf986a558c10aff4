-- coco SQLite schema, version 9: trees of commands held because the store refused their changes.
--
-- A batch the store refuses for what it holds (a constraint, a value it cannot store, a row to
-- update that is not there: BATCH_REFUSED, or a transition the triggers refuse) would be refused
-- on every try. The engine applies it again tree by tree until it knows the trees refused on their
-- own (engine/committer.ts), marks each here and halts; loaded again, such a tree is held: nothing
-- of it runs until a cancel ends it from what was stored (engine/recovery.ts).
--
-- One row per tree (its root's id): the store's last refusal (an ErrorInfo as JSON), how many
-- times its changes were refused (a tree refused again while it ends stays held), and when it was
-- last held (ms since the epoch). Deleted with the tree by retention.
CREATE TABLE held_trees (
  root_id INTEGER PRIMARY KEY,
  error TEXT NOT NULL,
  refusals INTEGER NOT NULL,
  held_at INTEGER NOT NULL
);
