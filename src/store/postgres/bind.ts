/**
 * The Bind messages of the apply connection, built without copying the batch's column buffers.
 *
 * node-postgres (pg-protocol's serializer) writes a Bind into a shared writer that starts at
 * 256 bytes and grows by half plus the next value each time one does not fit, copying what it
 * holds so far; a batch statement's parameters are a few column buffers of up to a few hundred
 * KB each (binary-arrays.ts), so most of them make it grow: the bytes were copied ~3 times before
 * the message left, and each growth left a large buffer behind for the collector. Here the
 * message's size is added up first; the small parts (code, length, names, format codes, each
 * parameter's length, strings and small Buffers) are written into one buffer, and each large
 * Buffer parameter is sent as it is, between two slices of that buffer ({@link bindChunks}). The
 * apply connection corks its socket around a batch (applier.ts), and node-postgres around each
 * query, so the chunks leave together in one writev. The bytes are the same as the serializer's
 * (test/unit/pg-bind.test.ts compares them).
 *
 * A large Buffer parameter is therefore read when the socket writes it, not when the query is
 * issued: it must not change in between (coco's column buffers are fresh for every statement,
 * binary-arrays.ts).
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

/**
 * Buffer parameters of at least this many bytes are sent as they are, not copied into the
 * message. Below it, a copy costs about what a chunk of its own does (a slice, a write into the
 * corked stream, an entry of the writev). The Binds of a one-task batch of 650 rows per table
 * (column buffers of 3–30 KB) cost 11.5–12.3 µs with 512 B to 2 KB here, 19 µs with 4 KB, 50 µs
 * with 16 KB and 67 µs copying every parameter; with 100 and 10 rows per table, 512 B to 4 KB are
 * within noise of copying everything.
 */
const SEND_AS_IS = 1024;

/**
 * The Bind message for `config` as consecutive chunks, whose concatenation is what pg-protocol's
 * `serialize.bind` writes: slices of one buffer holding the small parts, and each Buffer
 * parameter of {@link SEND_AS_IS} bytes or more, itself. One chunk when there is no such
 * parameter. Throws before anything is built if `valueMapper` throws, as the serializer does.
 */
export function bindChunks(config: BindConfig): Buffer[] {
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
  /** Bytes of the parameters sent as they are. */
  let asIs = 0;
  for (let i = 0; i < n; i++) {
    const v = config.valueMapper ? config.valueMapper(values[i], i) : values[i];
    mapped[i] = v;
    let len = -1;
    if (v instanceof Buffer) {
      len = v.length;
      if (len >= SEND_AS_IS) asIs += len;
    } else if (v !== null && v !== undefined) len = Buffer.byteLength(v as string);
    lengths[i] = len;
    size += 4 + Math.max(len, 0);
  }
  const buf = Buffer.allocUnsafe(size - asIs);
  const chunks: Buffer[] = [];
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
  /** Where the slice of `buf` not yet in `chunks` starts. */
  let from = 0;
  for (let i = 0; i < n; i++) {
    const v = mapped[i];
    const len = lengths[i]!;
    at = buf.writeInt32BE(len, at);
    if (v instanceof Buffer) {
      if (len < SEND_AS_IS) at += v.copy(buf, at);
      else {
        chunks.push(buf.subarray(from, at), v);
        from = at;
      }
    } else if (len > 0) at += buf.write(v as string, at, 'utf8');
  }
  at = buf.writeInt16BE(1, at);
  buf.writeInt16BE(config.binary === true ? 1 : 0, at);
  chunks.push(from === 0 ? buf : buf.subarray(from));
  return chunks;
}

/** The part of node-postgres' connection that sends a Bind. */
interface BindingConnection {
  bind(config: BindConfig): void;
  _send(buffer: Buffer): unknown;
}

/**
 * Makes `connection` (a node-postgres client's `connection`) send its Bind messages through
 * {@link bindChunks}, each chunk through its `_send` in order. Left as it is when it does not
 * have the two methods this relies on (another node-postgres version): the serializer's messages
 * are the same, only slower to build.
 */
export function useExactBind(connection: unknown): boolean {
  const c = connection as Partial<BindingConnection> | null | undefined;
  if (typeof c?.bind !== 'function' || typeof c._send !== 'function') return false;
  const send = c._send.bind(c);
  c.bind = (config: BindConfig): void => {
    for (const chunk of bindChunks(config)) send(chunk);
  };
  return true;
}
