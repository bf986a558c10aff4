-- coco PostgreSQL schema, version 11: admission across nodes (src/engine/shared-admission.ts).
-- A row per task holding a slot of its limited agent, cluster-wide: inserted by the agent's
-- lease holder when it grants the slot to a queued task (under a lock of the lease row, after
-- counting the agent's rows), deleted by the task's owner once the agent is done with the task.
-- A row whose command is gone or inactive (its tasks all cleared) holds nothing: the holder
-- drops it.
CREATE TABLE :COCO_SCHEMA.admission_slots (
  command_id bigint NOT NULL,
  ordinal integer NOT NULL,
  agent_id text NOT NULL,
  verb text NOT NULL,
  granted_at bigint NOT NULL,
  PRIMARY KEY (command_id, ordinal)
);
CREATE INDEX admission_slots_agent ON :COCO_SCHEMA.admission_slots (agent_id, verb);

-- The queued tasks of an agent, for the holder's admission.
CREATE INDEX tasks_queued ON :COCO_SCHEMA.tasks (agent_id) WHERE status = 'queued';
