-- coco PostgreSQL schema, version 3: cancel requests between nodes. A user may ask any node to
-- cancel a command; when another node owns the command's tree, the request is stored here and
-- that node is signalled. The owner cancels the command (durably) and then deletes the request.
CREATE TABLE :COCO_SCHEMA.cancel_requests (
  command_id bigint PRIMARY KEY,
  requested_at bigint NOT NULL
);
