-- coco PostgreSQL schema, version 8: what the API reads (GET /v1/commands, GET /v1/commands/:id).
--
-- Each command's stored statuses, oldest first (the detail's statusHistory). Written by triggers,
-- so that every path that stores a status (batches, claims, prunes) records it without the
-- engine knowing: one row per status a command was STORED with — statuses a command passed
-- through within one batch are not seen. A command never returns to a status (the transition
-- table has no cycles), hence the key. `at` is the row's updated_at when the status was written.
--
-- Statement-level triggers over transition tables: one INSERT .. SELECT per batch statement
-- (the batches write hundreds of rows per statement through UNNEST), not a PL/pgSQL call per
-- row, which was measured at ~25 us per row for the transition checks (see 0001).
CREATE TABLE :COCO_SCHEMA.command_status_history (
  command_id bigint NOT NULL,
  status text NOT NULL,
  at bigint NOT NULL,
  PRIMARY KEY (command_id, status)
);

INSERT INTO :COCO_SCHEMA.command_status_history (command_id, status, at)
  SELECT id, 'pending', created_at FROM :COCO_SCHEMA.commands
  ON CONFLICT DO NOTHING;
INSERT INTO :COCO_SCHEMA.command_status_history (command_id, status, at)
  SELECT id, status, updated_at FROM :COCO_SCHEMA.commands
  ON CONFLICT DO NOTHING;

CREATE FUNCTION :COCO_SCHEMA.commands_history_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO :COCO_SCHEMA.command_status_history (command_id, status, at)
    SELECT id, status, updated_at FROM new_rows
    ON CONFLICT DO NOTHING;
  RETURN NULL;
END
$$;
CREATE TRIGGER commands_status_history_insert
AFTER INSERT ON :COCO_SCHEMA.commands
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION :COCO_SCHEMA.commands_history_inserted();

CREATE FUNCTION :COCO_SCHEMA.commands_history_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO :COCO_SCHEMA.command_status_history (command_id, status, at)
    SELECT n.id, n.status, n.updated_at FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE o.status <> n.status
    ON CONFLICT DO NOTHING;
  RETURN NULL;
END
$$;
CREATE TRIGGER commands_status_history_update
AFTER UPDATE ON :COCO_SCHEMA.commands
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION :COCO_SCHEMA.commands_history_updated();

-- Retention deletes a command's history with it.
CREATE FUNCTION :COCO_SCHEMA.commands_history_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM :COCO_SCHEMA.command_status_history h USING old_rows o WHERE h.command_id = o.id;
  RETURN NULL;
END
$$;
CREATE TRIGGER commands_status_history_delete
AFTER DELETE ON :COCO_SCHEMA.commands
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION :COCO_SCHEMA.commands_history_deleted();

-- GET /v1/commands?type=T, newest first by keyset: without it a rare type scans every row.
-- Written once per command (the type never changes; HOT updates leave it alone).
CREATE INDEX commands_type ON :COCO_SCHEMA.commands (type, id);
-- GET /v1/commands?rootsOnly=true (the dashboard's jobs), newest first; insert-only as well.
CREATE INDEX commands_roots ON :COCO_SCHEMA.commands (id) WHERE parent_id IS NULL;
