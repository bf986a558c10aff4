-- coco PostgreSQL schema, version 1: the tables of the SQLite store (src/store/sqlite/migrations),
-- in PostgreSQL types.
-- :COCO_SCHEMA stands for the store's schema (quoted); the store substitutes it before running
-- this file, and creates the schema and the migration ledger (coco_migrations) first.
--
-- JSON values (parameters, results, errors, data) are TEXT holding JSON, as on SQLite, not JSONB:
-- jsonb refuses the escape \u0000, which the engine must round-trip; nothing filters inside these
-- values; and text is stored as sent, without a parse per value on every write. The store
-- validates every row it reads (src/store/sqlite/rows.ts), so a bad value is reported, not trusted.

-- Store identity (store_id) and other one-off settings.
CREATE TABLE :COCO_SCHEMA.coco_meta (
  key text PRIMARY KEY,
  value text NOT NULL
);

-- fillfactor: command and task rows are updated many times each; free space on their page lets
-- PostgreSQL write the new version there (a HOT update, no index entries) when no indexed
-- column changed.
CREATE TABLE :COCO_SCHEMA.commands (
  id bigint PRIMARY KEY,
  type text NOT NULL,
  params_version integer NOT NULL,
  params text,
  status text NOT NULL CONSTRAINT commands_status_known
    CHECK (status IN ('pending', 'waiting', 'aborting', 'compensating', 'succeeded', 'failed', 'cancelled')),
  parent_id bigint,
  root_id bigint NOT NULL,
  seq integer,
  origin_stage integer,
  child_mode text NOT NULL,
  failure_policy text NOT NULL,
  compensation text NOT NULL CONSTRAINT commands_compensation_known
    CHECK (compensation IN ('none', 'compensating', 'compensated', 'failed')),
  error text,
  result text,
  -- The engine's mutable bookkeeping (declared and created counts, stage, journal position,
  -- flags, retry state, scratch data) as one JSON array, in the order of COMMAND_STATE_FIELDS
  -- (src/store/sqlite/rows.ts). Nobody filters on these; one column instead of sixteen means
  -- one array parameter instead of sixteen for every batch, and a narrower row.
  state text NOT NULL,
  idempotency_key text,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  ended_at bigint,
  tasks_cleared boolean NOT NULL,
  -- The node owning the command's tree, maintained by the store (apply, claimOrphans).
  owner text,
  lease_until bigint,
  -- True while the engine must resume the command: not ended, OR tasks not cleared, OR being
  -- compensated. Computed by the store on every insert and update (rows.ts isActive).
  active boolean NOT NULL
) WITH (fillfactor = 85);

-- loadActive: the active set of one owner, without scanning ended commands; claimOrphans.
CREATE INDEX commands_active ON :COCO_SCHEMA.commands (owner, id) WHERE active;
-- Children of a command in journal order (loadActive's ended children, listCommands parentId).
CREATE INDEX commands_children ON :COCO_SCHEMA.commands (parent_id, seq) WHERE parent_id IS NOT NULL;
-- getCommandByKey, and at most one command per idempotency key.
CREATE UNIQUE INDEX commands_idempotency ON :COCO_SCHEMA.commands (idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Trees: listCommands rootId, loadRoots, and claimOrphans (which checks every active command
-- of a tree, the root included, hence not partial).
CREATE INDEX commands_root ON :COCO_SCHEMA.commands (root_id, id);

CREATE TABLE :COCO_SCHEMA.tasks (
  command_id bigint NOT NULL,
  ordinal integer NOT NULL,
  origin integer NOT NULL,
  agent_id text NOT NULL,
  verb text NOT NULL,
  args text,
  status text NOT NULL CONSTRAINT tasks_status_known
    CHECK (status IN ('created', 'running', 'succeeded', 'failed', 'cancelled')),
  result text,
  error text,
  deadline_at bigint,
  stop_requested boolean NOT NULL,
  created_at bigint NOT NULL,
  ended_at bigint,
  PRIMARY KEY (command_id, ordinal)
) WITH (fillfactor = 85);

-- foreignTasks: tasks not ended, by agent.
CREATE INDEX tasks_open ON :COCO_SCHEMA.tasks (agent_id) WHERE status IN ('created', 'running');

CREATE TABLE :COCO_SCHEMA.undo_steps (
  command_id bigint NOT NULL,
  ordinal integer NOT NULL,
  seq integer NOT NULL,
  stage integer NOT NULL,
  name text NOT NULL,
  data text,
  status text NOT NULL CONSTRAINT undo_steps_status_known
    CHECK (status IN ('recorded', 'done', 'failed')),
  error text,
  PRIMARY KEY (command_id, ordinal)
);

CREATE TABLE :COCO_SCHEMA.entities (
  kind text NOT NULL,
  id text NOT NULL,
  value text NOT NULL,
  command_id bigint NOT NULL,
  updated_at bigint NOT NULL,
  PRIMARY KEY (kind, id)
);

-- Agents as the engine last saw them: address, up/down, boot id (a new one means the agent
-- restarted), when it last answered, why it is down.
CREATE TABLE :COCO_SCHEMA.agents (
  id text PRIMARY KEY,
  address text,
  state text NOT NULL CHECK (state IN ('up', 'down')),
  boot_id text,
  last_seen_at bigint,
  last_error text,
  updated_at bigint NOT NULL
);

-- The state machines of src/core/states.ts (MACHINES), copied here so that the database itself
-- refuses an illegal transition, whatever the code does. Same-state updates are always legal
-- (the triggers only look at changes). test/store-conformance/postgres.test.ts checks that these
-- rows equal MACHINES; a change to states.ts needs a new migration.
CREATE TABLE :COCO_SCHEMA.command_transitions (
  from_status text NOT NULL,
  to_status text NOT NULL,
  PRIMARY KEY (from_status, to_status)
);
INSERT INTO :COCO_SCHEMA.command_transitions (from_status, to_status) VALUES
  ('pending', 'waiting'), ('pending', 'aborting'), ('pending', 'compensating'),
  ('pending', 'succeeded'), ('pending', 'failed'), ('pending', 'cancelled'),
  ('waiting', 'aborting'), ('waiting', 'compensating'), ('waiting', 'succeeded'),
  ('waiting', 'failed'), ('waiting', 'cancelled'),
  ('aborting', 'compensating'), ('aborting', 'failed'), ('aborting', 'cancelled'),
  ('compensating', 'failed'), ('compensating', 'cancelled');

CREATE TABLE :COCO_SCHEMA.compensation_transitions (
  from_status text NOT NULL,
  to_status text NOT NULL,
  PRIMARY KEY (from_status, to_status)
);
INSERT INTO :COCO_SCHEMA.compensation_transitions (from_status, to_status) VALUES
  ('none', 'compensating'), ('none', 'compensated'), ('none', 'failed'),
  ('compensating', 'compensated'), ('compensating', 'failed');

CREATE TABLE :COCO_SCHEMA.task_transitions (
  from_status text NOT NULL,
  to_status text NOT NULL,
  PRIMARY KEY (from_status, to_status)
);
INSERT INTO :COCO_SCHEMA.task_transitions (from_status, to_status) VALUES
  ('created', 'running'), ('created', 'succeeded'), ('created', 'failed'), ('created', 'cancelled'),
  ('running', 'succeeded'), ('running', 'failed'), ('running', 'cancelled');

CREATE TABLE :COCO_SCHEMA.undo_transitions (
  from_status text NOT NULL,
  to_status text NOT NULL,
  PRIMARY KEY (from_status, to_status)
);
INSERT INTO :COCO_SCHEMA.undo_transitions (from_status, to_status) VALUES
  ('recorded', 'done'), ('recorded', 'failed');

-- The triggers. Each refuses the changes of one status column that its transition table does
-- not list, raising SQLSTATE CO001 (a code of our own, not a message to match) with the message
-- 'ILLEGAL_TRANSITION|<machine>|<subject>|<from>|<to>', which the store turns into an
-- IllegalTransitionError (src/store/postgres/connection.ts).
--
-- The legal pairs are compiled from the table into the trigger's WHEN clause when this migration
-- runs (create_transition_trigger below), so a legal update never enters PL/pgSQL: a trigger
-- function looking the pair up in the table cost ~25 us per updated row (a third of a batch's
-- update time), the WHEN clause next to nothing. The tables stay the one source: a migration that
-- changes a table must recreate its trigger the same way.
CREATE FUNCTION :COCO_SCHEMA.illegal_transition() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  -- TG_ARGV: the machine, the status column, the prefix of the subject (commands only).
  o jsonb := to_jsonb(OLD);
  n jsonb := to_jsonb(NEW);
  subject text := CASE WHEN TG_TABLE_NAME = 'commands' THEN TG_ARGV[2] || (o->>'id')
                       ELSE (o->>'command_id') || '/' || (o->>'ordinal') END;
BEGIN
  RAISE EXCEPTION USING ERRCODE = 'CO001',
    MESSAGE = format('ILLEGAL_TRANSITION|%s|%s|%s|%s', TG_ARGV[0], subject, o->>TG_ARGV[1], n->>TG_ARGV[1]);
END
$$;

CREATE FUNCTION :COCO_SCHEMA.create_transition_trigger(
  tbl text, col text, machine text, transitions text, subject_prefix text
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  legal text;
BEGIN
  EXECUTE format('SELECT coalesce(string_agg(from_status || %L || to_status, %L), %L) FROM %s',
                 '>', ',', '', transitions) INTO legal;
  EXECUTE format(
    'CREATE TRIGGER %I BEFORE UPDATE OF %I ON %s FOR EACH ROW '
    'WHEN (OLD.%I <> NEW.%I AND OLD.%I || %L || NEW.%I <> ALL (%L::text[])) '
    'EXECUTE FUNCTION %s(%L, %L, %L)',
    split_part(tbl, '.', 2) || '_' || col || '_transition', col, tbl,
    col, col, col, '>', col, '{' || legal || '}',
    ':COCO_SCHEMA.illegal_transition', machine, col, subject_prefix);
END
$$;

SELECT :COCO_SCHEMA.create_transition_trigger(':COCO_SCHEMA.commands', 'status', 'command', ':COCO_SCHEMA.command_transitions', '');
SELECT :COCO_SCHEMA.create_transition_trigger(':COCO_SCHEMA.commands', 'compensation', 'compensation', ':COCO_SCHEMA.compensation_transitions', 'of command ');
SELECT :COCO_SCHEMA.create_transition_trigger(':COCO_SCHEMA.tasks', 'status', 'task', ':COCO_SCHEMA.task_transitions', '');
SELECT :COCO_SCHEMA.create_transition_trigger(':COCO_SCHEMA.undo_steps', 'status', 'undo', ':COCO_SCHEMA.undo_transitions', '');
DROP FUNCTION :COCO_SCHEMA.create_transition_trigger(text, text, text, text, text);
