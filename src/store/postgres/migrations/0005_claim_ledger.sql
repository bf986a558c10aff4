-- coco PostgreSQL schema, version 5: the claim ledger.
--
-- claimOrphans moves trees to the caller in one transaction. When the connection is lost after
-- its COMMIT was sent, the caller cannot know whether it now owns them; before this ledger the
-- trees it did get stayed owned by it and unloaded until it restarted. Each node numbers its
-- claims; a claim's transaction writes its number and root ids on the node's row, so a caller
-- that lost the answer reads them back and loads the trees it got.
ALTER TABLE :COCO_SCHEMA.coco_nodes
  ADD COLUMN last_claim bigint NOT NULL DEFAULT 0,
  ADD COLUMN last_claim_roots bigint[] NOT NULL DEFAULT '{}';
