-- coco PostgreSQL schema, version 10: the trace context of a command (src/engine/tracing.ts).
-- The W3C traceparent of the command's span when it was created, written once with the insert
-- and read back when a node loads the command (restart, claim), so that what happens to it later
-- and its children join its trace. NULL when no tracer recorded the command. Adding a nullable
-- column without a default is a catalogue change only: no table rewrite.
ALTER TABLE :COCO_SCHEMA.commands ADD COLUMN trace_context text;
