-- coco PostgreSQL schema, version 6: node epochs from one sequence, so that node rows can go.
--
-- A node's epoch told its processes apart only while its row lived: re-registering a node id
-- whose row was deleted began again at epoch 1, the epoch of a long-paused first process of that
-- id, which could then pass the fencing checks. Epochs now come from one sequence for the whole
-- schema, so a new registration never meets an epoch any earlier process held, and rows of
-- fenced nodes that own nothing any more can be deleted (the claims do it, after a while: see
-- purgeNodes in src/store/postgres/shared.ts) instead of piling up with every process start.
CREATE SEQUENCE :COCO_SCHEMA.coco_node_epochs;
SELECT setval(':COCO_SCHEMA.coco_node_epochs',
              (SELECT coalesce(max(epoch), 0) + 1 FROM :COCO_SCHEMA.coco_nodes), false);
-- Fenced rows by age (the purge), without reading the live ones.
CREATE INDEX coco_nodes_fenced ON :COCO_SCHEMA.coco_nodes (heartbeat_at) WHERE fenced;
