-- coco PostgreSQL schema, version 23: which ended root a rerun ran again (as SQLite's 0011).
--
-- A rerun (API POST /v1/commands/:id/rerun, `coco rerun`) is a new root of the ended one's type
-- with its parameters. One row per rerun (its root's id): the root it ran again and when it was
-- linked (ms since the epoch). Read both ways: a command's detail says what it reran and what
-- reran it. Deleted with the rerun's tree by retention (the root it names may be gone first).
CREATE TABLE :COCO_SCHEMA.reruns (
  root_id bigint PRIMARY KEY,
  rerun_of bigint NOT NULL,
  linked_at bigint NOT NULL
);
CREATE INDEX reruns_of ON :COCO_SCHEMA.reruns (rerun_of);
