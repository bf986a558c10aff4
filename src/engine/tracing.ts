/**
 * Traces of the engine's work, through `@opentelemetry/api` only: a no-op until the user
 * registers an OpenTelemetry SDK (a tracer provider, and a context manager for handlers' own
 * spans to nest).
 *
 * - A span per command (`command <type>`), from its creation to its durable end, nested under
 *   its parent's; a root nests under the span active where it was submitted.
 * - A span per task (`task <verb>`) under its command's, from its creation (the intent) to its
 *   end; `started` is an event on it. Its `traceparent` goes to the agent with the start, so the
 *   agent's work on the task joins the trace.
 * - A span per handler run (`<type> execute`, `next`, `onSuccess`, `undo <name>`, `onFailure`)
 *   under the command's, active while the handler runs: the handler's own spans nest under it.
 *
 * A command whose span the sampler leaves out gets no task or handler spans (they would be left
 * out too): an unsampled command costs one span start. Its context is still stored and handed
 * to its children, so that they are left out alike.
 *
 * A span lives in one process. The command's first span context is stored with it (the
 * `trace_context` column, written once with the insert), so after a restart — or on the node
 * that claimed the tree — a command still running gets a new span (`coco.resumed`) under the
 * stored one, its new tasks, handlers and children nest under that, and everything stays in the
 * command's trace. (The span the engine had open when it stopped is never exported: an SDK
 * exports a span when it ends.)
 *
 * @module
 */
import {
  ProxyTracer,
  ProxyTracerProvider,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  isSpanContextValid,
  trace,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { formatTraceParent, parseTraceParent } from '../core/trace-context.js';
import type { LiveCommand, LiveTask } from './live.js';

/** The name the engine's tracer is asked for (`trace.getTracer`). */
export const TRACER_NAME = 'coco-engine';

/** What a handler run is, for its span's name. */
export type HandlerPhase = 'stage' | 'success' | 'undo' | 'failure';

/** The engine's spans. One per engine start; `null` tracer: none at all. */
export class Tracing {
  readonly #tracer: Tracer | null;

  constructor(tracer: Tracer | null) {
    this.#tracer = tracer;
  }

  /** The context that a command's new spans nest under. */
  #contextOf(c: LiveCommand): Context {
    if (c.span) return trace.setSpan(ROOT_CONTEXT, c.span);
    const stored = parseTraceParent(c.traceContext);
    return stored
      ? trace.setSpanContext(ROOT_CONTEXT, { ...stored, isRemote: true })
      : ROOT_CONTEXT;
  }

  /** A new command: its span starts, under its parent's (a root: under the caller's active span). */
  created(c: LiveCommand, parent: LiveCommand | null): void {
    const tracer = this.#tracer;
    if (!tracer) return;
    const span = tracer.startSpan(
      `command ${c.type.name}`,
      { kind: SpanKind.INTERNAL },
      parent ? this.#contextOf(parent) : context.active(),
    );
    const sc = span.spanContext();
    if (!isSpanContextValid(sc)) return;
    c.traceContext = formatTraceParent(sc);
    if (!span.isRecording()) return;
    c.span = span;
    span.setAttributes({
      'coco.command.id': c.id,
      'coco.command.type': c.type.name,
      'coco.command.root_id': c.rootId,
    });
    if (c.parentId !== null) span.setAttribute('coco.command.parent_id', c.parentId);
  }

  /**
   * Whether spans may be made now: false without a tracer, and for the API's no-op tracer — the
   * default one (`trace.getTracer`) while no SDK is registered, whose every span is a
   * non-recording stand-in. A restart asks once rather than making such a span per resumed
   * command (1,000,000 of them: a span, a name and an options object each, ~0.2 µs).
   */
  makesSpans(): boolean {
    const tracer = this.#tracer;
    if (!tracer) return false;
    return !isNoopTracer(tracer);
  }

  /**
   * A stored command brought back to life (restart, claimed tree): a new span under its stored
   * one (or its parent's, when it had none), for the rest of its life here; and one per task
   * still running.
   */
  resumed(c: LiveCommand, parent: LiveCommand | undefined): void {
    const tracer = this.#tracer;
    if (!tracer || c.held) return;
    if (!c.terminal) {
      const ctx = c.traceContext !== null || !parent ? this.#contextOf(c) : this.#contextOf(parent);
      const span = tracer.startSpan(`command ${c.type.name}`, { kind: SpanKind.INTERNAL }, ctx);
      if (span.isRecording()) {
        c.span = span;
        span.setAttributes({
          'coco.command.id': c.id,
          'coco.command.type': c.type.name,
          'coco.command.root_id': c.rootId,
          'coco.resumed': true,
        });
      }
    }
    for (const t of c.tasks) if (!t.ended) this.task(t, true);
  }

  /** A command built but never stored (its idempotency key was taken): its span ends so. */
  dropped(c: LiveCommand): void {
    const span = c.span;
    if (!span) return;
    c.span = null;
    span.setAttribute('coco.command.outcome', 'not stored: idempotency key taken');
    span.end();
  }

  /** A command's end is durable: its span ends with the outcome. */
  ended(c: LiveCommand): void {
    const span = c.span;
    if (!span) return;
    c.span = null;
    span.setAttribute('coco.command.outcome', c.status);
    if (c.status === 'failed')
      span.setStatus({ code: SpanStatusCode.ERROR, message: c.error?.message ?? 'failed' });
    span.end();
  }

  /** A task was created (or, `resumed`, is running after a restart): its span starts. */
  task(t: LiveTask, resumed = false): void {
    const tracer = this.#tracer;
    if (!tracer) return;
    const c = t.command;
    // Only under a recorded command span: a command the sampler left out (or one not traced)
    // makes no span of its tasks, which would be left out as well.
    if (!c.span) return;
    const span = tracer.startSpan(`task ${t.verb}`, { kind: SpanKind.CLIENT }, this.#contextOf(c));
    if (!span.isRecording()) return;
    t.span = span;
    span.setAttributes({
      'coco.command.id': c.id,
      'coco.task.id': t.agentTaskId,
      'coco.task.ordinal': t.ordinal,
      'coco.task.verb': t.verb,
      'coco.agent.id': t.agentId,
    });
    if (resumed) span.setAttribute('coco.resumed', true);
  }

  /** The agent confirmed the task runs. */
  taskStarted(t: LiveTask): void {
    t.span?.addEvent('started');
  }

  /** A task ended (succeeded, failed, cancelled): its span ends. */
  taskEnded(t: LiveTask): void {
    const span = t.span;
    if (!span) return;
    t.span = null;
    span.setAttribute('coco.task.status', t.status);
    if (t.status === 'failed')
      span.setStatus({ code: SpanStatusCode.ERROR, message: t.error?.message ?? 'failed' });
    span.end();
  }

  /**
   * Starts the span of a handler run, or returns null (no span for the command). Run the handler
   * in {@link Tracing.active} of it, then call {@link Tracing.handlerEnded}.
   */
  handler(c: LiveCommand, phase: HandlerPhase, undoName?: string): Span | null {
    const tracer = this.#tracer;
    if (!tracer || !c.span) return null;
    const what =
      phase === 'stage'
        ? c.stage === 0
          ? 'execute'
          : 'next'
        : phase === 'success'
          ? 'onSuccess'
          : phase === 'failure'
            ? 'onFailure'
            : `undo ${undoName ?? ''}`;
    const span = tracer.startSpan(
      `${c.type.name} ${what}`,
      { kind: SpanKind.INTERNAL },
      this.#contextOf(c),
    );
    if (!span.isRecording()) return null;
    span.setAttributes({ 'coco.command.id': c.id, 'coco.handler.attempt': c.attempts + 1 });
    if (phase === 'stage') span.setAttribute('coco.command.stage', c.stage);
    return span;
  }

  /** Runs `fn` with `span` active (the handler's own spans nest under it). */
  active<T>(span: Span, fn: () => T): T {
    return context.with(trace.setSpan(context.active(), span), fn);
  }

  /** A handler run ended: it returned (`ok`) or threw `error`. */
  handlerEnded(span: Span, outcome: { ok: true } | { ok: false; error: unknown }): void {
    if (!outcome.ok) {
      const { error } = outcome;
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: error instanceof Error ? error.message : String(error),
      });
    }
    span.end();
  }
}

/** The class of the API's no-op tracer (not exported by the API: taken from an instance). */
const NOOP_TRACER_CLASS: unknown = new ProxyTracerProvider()
  .getDelegate()
  .getTracer('').constructor;

/**
 * Whether a tracer is the API's no-op one, or the API's proxy tracer while it has no delegate
 * (no SDK registered yet: its spans come from the no-op tracer). Asks the proxy through its
 * `_getTracer` (what its `startSpan` calls, present since API 1.0); without it — another
 * version of the API — the tracer is taken to make spans.
 */
function isNoopTracer(tracer: Tracer): boolean {
  if (tracer.constructor === NOOP_TRACER_CLASS) return true;
  if (!(tracer instanceof ProxyTracer)) return false;
  const current = (tracer as unknown as { _getTracer?: () => Tracer })._getTracer?.();
  return current !== undefined && current.constructor === NOOP_TRACER_CLASS;
}
