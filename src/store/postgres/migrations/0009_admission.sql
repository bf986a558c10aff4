-- coco PostgreSQL schema, version 9: admission control (src/engine/admission.ts).
-- A task past its agent's limit is stored `queued` (its intent, never sent to the agent) until a
-- slot frees; `queued` joins the task machine of src/core/states.ts (see SQLite 0005).
ALTER TABLE :COCO_SCHEMA.tasks DROP CONSTRAINT tasks_status_known;
ALTER TABLE :COCO_SCHEMA.tasks ADD CONSTRAINT tasks_status_known
  CHECK (status IN ('queued', 'created', 'running', 'succeeded', 'failed', 'cancelled'));

INSERT INTO :COCO_SCHEMA.task_transitions (from_status, to_status) VALUES
  ('queued', 'created'), ('queued', 'running'), ('queued', 'succeeded'), ('queued', 'failed'),
  ('queued', 'cancelled');

-- The trigger's WHEN clause holds the legal pairs compiled from the table (0001): compile again.
DROP TRIGGER tasks_status_transition ON :COCO_SCHEMA.tasks;
DO $$
DECLARE
  legal text;
BEGIN
  SELECT coalesce(string_agg(from_status || '>' || to_status, ','), '')
    FROM :COCO_SCHEMA.task_transitions INTO legal;
  EXECUTE format(
    'CREATE TRIGGER tasks_status_transition BEFORE UPDATE OF status ON %s FOR EACH ROW '
    'WHEN (OLD.status <> NEW.status AND OLD.status || %L || NEW.status <> ALL (%L::text[])) '
    'EXECUTE FUNCTION %s(%L, %L, %L)',
    ':COCO_SCHEMA.tasks', '>', '{' || legal || '}', ':COCO_SCHEMA.illegal_transition', 'task', 'status', '');
END
$$;
