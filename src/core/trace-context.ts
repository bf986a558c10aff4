/**
 * The W3C Trace Context `traceparent` value (https://www.w3.org/TR/trace-context/), version 00:
 * how a span's identity is written down — stored with a command, sent to an agent with a task —
 * so that work elsewhere or later joins the same trace. Pure text; the engine and the agents
 * turn it into OpenTelemetry span contexts.
 *
 * @module
 */

/** A span's identity: trace id (32 hex), span id (16 hex) and trace flags (bit 0: sampled). */
export interface TraceParent {
  readonly traceId: string;
  readonly spanId: string;
  readonly traceFlags: number;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/** The longest `traceparent` text (version 00): what a protocol field must allow. */
export const TRACEPARENT_LENGTH = 55;

/** Writes a span's identity as a `traceparent` value. */
export function formatTraceParent(p: TraceParent): string {
  return `00-${p.traceId}-${p.spanId}-${(p.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

/**
 * Reads a `traceparent` value; null for anything else (another version, upper case, all-zero
 * ids): a bad value starts no trace rather than failing the work it came with.
 */
export function parseTraceParent(text: string | null | undefined): TraceParent | null {
  if (typeof text !== 'string') return null;
  const m = TRACEPARENT.exec(text);
  if (!m || m[1] === ZERO_TRACE || m[2] === ZERO_SPAN) return null;
  return { traceId: m[1]!, spanId: m[2]!, traceFlags: parseInt(m[3]!, 16) };
}
