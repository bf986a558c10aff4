-- coco PostgreSQL schema, version 2: what many nodes sharing one database need (src/store/port.ts,
-- SharedStore): node leases, agent leases, relayed task reports, and the command id counter.

-- Nodes that opened the store. A node holds its lease while lease_until (database clock) is in
-- the future; a node whose lease expired is fenced by the first other node that claims orphans,
-- and a fenced node can neither apply a batch nor renew its lease. epoch grows each time a
-- process (re)registers the node id, so a paused earlier process with the same id is fenced out
-- too. instance is a random id of the registering store instance: a registration it repeats
-- (its answer was lost with the connection) finds its own live row and takes it. last_batch is the number of the last batch this node committed: apply writes it in the
-- batch's own transaction, so after a lost connection the node learns whether a COMMIT it sent
-- took effect.
CREATE TABLE :COCO_SCHEMA.coco_nodes (
  node_id text PRIMARY KEY,
  epoch bigint NOT NULL,
  lease_until timestamptz NOT NULL,
  fenced boolean NOT NULL,
  last_batch bigint NOT NULL,
  instance text NOT NULL,
  pid integer NOT NULL,
  host text NOT NULL,
  since timestamptz NOT NULL,
  heartbeat_at timestamptz NOT NULL
);

-- Which node polls which agent. A lease held by a fenced node, or expired, may be taken.
CREATE TABLE :COCO_SCHEMA.agent_leases (
  agent_id text PRIMARY KEY,
  node_id text NOT NULL,
  lease_until timestamptz NOT NULL
);
CREATE INDEX agent_leases_node ON :COCO_SCHEMA.agent_leases (node_id);

-- What the node polling an agent learned about tasks of other nodes' commands, for their owners.
-- The primary key also serves "the reports of a command" (apply deletes those it settles).
CREATE TABLE :COCO_SCHEMA.task_reports (
  command_id bigint NOT NULL,
  ordinal integer NOT NULL,
  status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled', 'unknown')),
  result text,
  error text,
  progress double precision CHECK (progress >= 0 AND progress <= 1),
  at bigint NOT NULL,
  PRIMARY KEY (command_id, ordinal)
);

-- The next command id to hand out, for all nodes (reserveIds). One row, updated in short
-- transactions of their own.
CREATE TABLE :COCO_SCHEMA.coco_ids (
  singleton boolean PRIMARY KEY CHECK (singleton),
  next_id bigint NOT NULL
);
INSERT INTO :COCO_SCHEMA.coco_ids (singleton, next_id) VALUES (true, 1);
