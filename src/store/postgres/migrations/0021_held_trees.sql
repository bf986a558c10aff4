-- coco PostgreSQL schema, version 21: trees of commands held because the store refused their
-- changes (as SQLite's 0009).
--
-- A batch the store refuses for what it holds (SQLSTATE classes 22, 23 and 54, a row to update
-- that is not there: BATCH_REFUSED, or a transition the triggers refuse) would be refused on every
-- try. The engine applies it again tree by tree until it knows the trees refused on their own
-- (engine/committer.ts), marks each here and halts; loaded again (at start, or claimed by another
-- node), such a tree is held: nothing of it runs until a cancel ends it from what was stored.
--
-- One row per tree (its root's id): the store's last refusal (an ErrorInfo as JSON text), how many
-- times its changes were refused (a tree refused again while it ends stays held), and when it was
-- last held. Deleted with the tree by retention.
CREATE TABLE :COCO_SCHEMA.held_trees (
  root_id bigint PRIMARY KEY,
  error text NOT NULL,
  refusals integer NOT NULL,
  held_at bigint NOT NULL
);
