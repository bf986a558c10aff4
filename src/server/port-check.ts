/**
 * Whether a server's address can be bound, checked before a process starts anything (`coco
 * serve`'s API, `coco agent`): a port taken by another process, a low port without the right or
 * an address this host does not have is refused with a message saying what to change, instead of
 * failing half-started.
 *
 * @module
 */
import { createServer } from 'node:net';
import { CocoError, ErrorCode } from '../core/errors.js';

/** How {@link checkPortFree} words its refusal. */
export interface PortUse {
  /** What the port is for, after "cannot": e.g. `serve the API`. */
  readonly what: string;
  /** Who likely holds a port in use: e.g. `another coco serve`. */
  readonly who: string;
  /** Which options choose the address: e.g. `--port or api.port / api.host`. */
  readonly change: string;
}

/**
 * Throws `INVALID_OPTIONS` when `host:port` cannot be bound now (`EADDRINUSE`, `EACCES`,
 * `EADDRNOTAVAIL`), naming the cause and the options to change; port 0 (any free one) always
 * passes. A port freed or taken between this check and the real listen is still caught there.
 */
export async function checkPortFree(host: string, port: number, use: PortUse): Promise<void> {
  if (port === 0) return;
  const probe = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen({ host, port, exclusive: true }, resolve);
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL')
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `cannot ${use.what} on ${host}:${port} (${code}: ${
          code === 'EADDRINUSE'
            ? `the port is in use, perhaps by ${use.who}`
            : code === 'EACCES'
              ? 'not allowed to bind that port'
              : 'no such address on this host'
        }): give another with ${use.change}; nothing was started`,
      );
    throw error;
  } finally {
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  }
}
