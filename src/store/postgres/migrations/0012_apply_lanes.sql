-- coco PostgreSQL schema, version 12: several apply connections ("lanes") per node
-- (src/store/postgres/lanes.ts, the store option `applyConnections`).
--
-- Each lane of a node keeps its own exactly-once ledger, as coco_nodes.last_batch does for a node
-- applying through one connection: a lane's batch writes its number here in its own transaction,
-- and only if the lane's last committed batch is the one before it. A node's lanes are reset to 0
-- under each new epoch (when the node opens). Lanes do not lock the node row (a heartbeat updates
-- it, and share lockers would starve it): they hold the node's advisory lock shared instead, which
-- whatever fences or replaces the node only ever *tries* to take exclusively.
CREATE TABLE :COCO_SCHEMA.coco_apply_lanes (
  node_id text NOT NULL,
  lane integer NOT NULL CHECK (lane >= 0),
  epoch bigint NOT NULL,
  last_batch bigint NOT NULL,
  PRIMARY KEY (node_id, lane)
);
