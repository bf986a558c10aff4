-- coco PostgreSQL schema, version 22: command types paused by an operator (as SQLite's 0010).
--
-- A paused type's new roots are stored and wait, queued, until it is resumed (its roots already
-- running go on, and children of every type run: engine/root-admission.ts). The pause holds for
-- every node of the schema: a pause or a resume signals them all (`pauses`), and each reads this
-- table at its start and at every claim tick.
--
-- One row per paused type (its registered name): when it was paused (ms since the epoch), who
-- paused it (the API caller's name, or NULL) and why (the operator's words, or NULL). A resume
-- deletes the row.
CREATE TABLE :COCO_SCHEMA.paused_types (
  type text PRIMARY KEY,
  paused_at bigint NOT NULL,
  paused_by text,
  reason text
);
