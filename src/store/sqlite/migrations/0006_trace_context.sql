-- coco SQLite schema, version 6: the trace context of a command (src/engine/tracing.ts).
-- The W3C traceparent of the command's span when it was created, written once with the insert
-- and read back when the command is loaded (after a restart), so that what happens to it later
-- and its children join its trace. NULL when no tracer recorded the command.
ALTER TABLE commands ADD COLUMN trace_context TEXT;
