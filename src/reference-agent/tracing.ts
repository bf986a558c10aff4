/**
 * The reference agent's spans, through `@opentelemetry/api` only (a no-op until an SDK is
 * registered in the agent's process): a span per task, from its start to its end, under the
 * engine's task span named by the start's `traceparent` — so the agent's work joins the
 * command's trace. The verb runs with that span active: a verb's own spans nest under it.
 *
 * @module
 */
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  trace,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { parseTraceParent } from '../core/trace-context.js';

/** The name the agent's tracer is asked for (`trace.getTracer`). */
export const AGENT_TRACER_NAME = 'coco-agent';

/**
 * Starts the span of a task's run on this agent, under `traceparent` (the engine's task span)
 * when it is a valid one; null when nothing records it.
 */
export function startTaskSpan(
  tracer: Tracer | null,
  agentId: string,
  taskId: string,
  verb: string,
  traceparent: string | undefined,
): Span | null {
  if (!tracer) return null;
  const parent = parseTraceParent(traceparent);
  const ctx = parent
    ? trace.setSpanContext(ROOT_CONTEXT, { ...parent, isRemote: true })
    : ROOT_CONTEXT;
  const span = tracer.startSpan(`agent ${verb}`, { kind: SpanKind.SERVER }, ctx);
  if (!span.isRecording()) return null;
  span.setAttributes({ 'coco.agent.id': agentId, 'coco.task.id': taskId, 'coco.task.verb': verb });
  return span;
}

/** Runs `fn` with `span` active (or as it is, without one). */
export function withSpan<T>(span: Span | null, fn: () => T): T {
  return span ? context.with(trace.setSpan(context.active(), span), fn) : fn();
}

/** Ends a task's span with the task's state (and its error's message when it failed). */
export function endTaskSpan(span: Span, state: string, errorMessage: string | undefined): void {
  span.setAttribute('coco.task.status', state);
  if (state === 'failed')
    span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage ?? 'failed' });
  span.end();
}
