/**
 * `whileBusy` (src/db/sqlite.ts): what SQLite refuses as busy without waiting (two processes
 * switching one new file to WAL at once) is tried again until the busy timeout, nothing else.
 */
import { describe, expect, it } from 'vitest';
import { whileBusy } from '../../../src/db/sqlite.js';

const busy = (): Error => Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });

describe('whileBusy', () => {
  it('tries again while SQLite says busy, and returns the answer', () => {
    let calls = 0;
    const value = whileBusy(() => {
      if (++calls < 4) throw busy();
      return 'wal';
    }, 5_000);
    expect(value).toBe('wal');
    expect(calls).toBe(4);
  });

  it('gives up once its budget has passed, with the last error', () => {
    let calls = 0;
    const t0 = Date.now();
    expect(() =>
      whileBusy(() => {
        calls++;
        throw busy();
      }, 30),
    ).toThrow('database is locked');
    expect(calls).toBeGreaterThan(1);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(30);
  });

  it('does not try again on any other error', () => {
    let calls = 0;
    expect(() =>
      whileBusy(() => {
        calls++;
        throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' });
      }, 5_000),
    ).toThrow('disk I/O error');
    expect(calls).toBe(1);
  });
});
