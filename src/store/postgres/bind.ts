/**
 * The Bind messages of the apply connection, each built in one buffer of its exact size.
 *
 * node-postgres (pg-protocol's serializer) writes a Bind into a shared writer that starts at
 * 256 bytes and grows by half plus the next value each time one does not fit, copying what it
 * holds so far; a batch statement's parameters are a few column buffers of up to a few hundred
 * KB each (binary-arrays.ts), so most of them make it grow: the bytes were copied ~3 times before
 * the message left, and each growth left a large buffer behind for the collector. Here the
 * message's size is added up first, then every parameter copied once. The bytes are the same
 * as the serializer's (test/unit/pg-bind.test.ts compares them).
 *
 * @module
 */

/** What node-postgres' connection passes to `bind`. */
export interface BindConfig {
  readonly portal?: string;
  readonly statement?: string;
  readonly binary?: boolean;
  readonly values?: readonly unknown[];
  readonly valueMapper?: (value: unknown, index: number) => unknown;
}

/** Protocol message code of Bind ('B'). */
const BIND = 0x42;

/** The Bind message for `config`, as pg-protocol's `serialize.bind` writes it. */
export function bindMessage(config: BindConfig): Buffer {
  const portal = config.portal ?? '';
  const statement = config.statement ?? '';
  const values = config.values ?? [];
  const n = values.length;
  const mapped: unknown[] = new Array<unknown>(n);
  const lengths: number[] = new Array<number>(n);
  // Code, length, portal and statement names (NUL-terminated), format codes, parameters, and
  // the one result format code.
  let size = 1 + 4 + Buffer.byteLength(portal) + 1 + Buffer.byteLength(statement) + 1;
  size += 2 + 2 * n + 2 + 2 + 2;
  for (let i = 0; i < n; i++) {
    const v = config.valueMapper ? config.valueMapper(values[i], i) : values[i];
    mapped[i] = v;
    let len = -1;
    if (v instanceof Buffer) len = v.length;
    else if (v !== null && v !== undefined) len = Buffer.byteLength(v as string);
    lengths[i] = len;
    size += 4 + Math.max(len, 0);
  }
  const buf = Buffer.allocUnsafe(size);
  buf[0] = BIND;
  buf.writeInt32BE(size - 1, 1);
  let at = 5;
  at += buf.write(portal, at, 'utf8');
  buf[at++] = 0;
  at += buf.write(statement, at, 'utf8');
  buf[at++] = 0;
  at = buf.writeInt16BE(n, at);
  for (let i = 0; i < n; i++) at = buf.writeInt16BE(mapped[i] instanceof Buffer ? 1 : 0, at);
  at = buf.writeInt16BE(n, at);
  for (let i = 0; i < n; i++) {
    const v = mapped[i];
    const len = lengths[i]!;
    at = buf.writeInt32BE(len, at);
    if (v instanceof Buffer) at += v.copy(buf, at);
    else if (len > 0) at += buf.write(v as string, at, 'utf8');
  }
  at = buf.writeInt16BE(1, at);
  buf.writeInt16BE(config.binary === true ? 1 : 0, at);
  return buf;
}

/** The part of node-postgres' connection that sends a Bind. */
interface BindingConnection {
  bind(config: BindConfig): void;
  _send(buffer: Buffer): unknown;
}

/**
 * Makes `connection` (a node-postgres client's `connection`) send its Bind messages through
 * {@link bindMessage}. Left as it is when it does not have the two methods this relies on (another
 * node-postgres version): the serializer's messages are the same, only slower to build.
 */
export function useExactBind(connection: unknown): boolean {
  const c = connection as Partial<BindingConnection> | null | undefined;
  if (typeof c?.bind !== 'function' || typeof c._send !== 'function') return false;
  const send = c._send.bind(c);
  c.bind = (config: BindConfig): void => void send(bindMessage(config));
  return true;
}
