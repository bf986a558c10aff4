/**
 * Where the apply backends' wall time goes over a measured run (`BENCH_PG_WAITS`), sampled from
 * outside: every millisecond the bench reads each apply backend's `/proc/PID/stat` state and
 * `/proc/PID/syscall` (readable by root or the server's own user; elsewhere the sampler says
 * so and stays off). A sample falls in one of:
 *
 * - `cpu`: running or runnable (state R: its statements, or waiting for a core);
 * - `flush`: in fdatasync/fsync/sync_file_range — the WAL flush of a COMMIT;
 * - `walWrite`: in pwrite/write of WAL buffers (or a dirty page it must evict);
 * - `client`: in epoll_wait/recvfrom with no timeout — idle, waiting for the node's next bytes;
 * - `lock`: in futex/semop (an LWLock such as WALWriteLock, taken by another flusher) or a
 *   latch wait with a timeout (a heavyweight lock, group commit);
 * - `other`: anything else (sendto of the answers, page reads).
 *
 * Sampling costs the bench process ~10 µs per sample per backend (one core at most a few %),
 * and a 1 ms timer on a busy 2-core machine fires late: the shares are what matters, not counts.
 */
import { readFileSync } from 'node:fs';

/** Shares of samples per category, and the sample count. */
export interface WaitShares {
  samples: number;
  cpu: number;
  flush: number;
  walWrite: number;
  client: number;
  lock: number;
  other: number;
}

type Category = Exclude<keyof WaitShares, 'samples'>;

// x86-64 system call numbers.
const SYS = {
  read: 0,
  write: 1,
  pwrite64: 18,
  sendto: 44,
  recvfrom: 45,
  fsync: 74,
  fdatasync: 75,
  futex: 202,
  semtimedop: 220,
  epollWait: 232,
  semop: 65,
  syncFileRange: 277,
  epollPwait: 281,
} as const;

function classify(pid: number): Category | null {
  let stat: string;
  let syscall: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    syscall = readFileSync(`/proc/${pid}/syscall`, 'utf8');
  } catch {
    return null;
  }
  // The state follows the command name's closing parenthesis.
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  if (state === 'R' || syscall.startsWith('running')) return 'cpu';
  const fields = syscall.trim().split(' ');
  const nr = Number(fields[0]);
  switch (nr) {
    case SYS.fdatasync:
    case SYS.fsync:
    case SYS.syncFileRange:
      return 'flush';
    case SYS.pwrite64:
    case SYS.write:
      return 'walWrite';
    case SYS.recvfrom:
    case SYS.read:
      return 'client';
    case SYS.epollWait:
    case SYS.epollPwait: {
      // The client socket is waited for without a timeout (-1); latches (locks, group commit)
      // with one.
      const timeout = fields[4] ?? '';
      return timeout === '0xffffffffffffffff' || timeout === '0xffffffff' ? 'client' : 'lock';
    }
    case SYS.futex:
    case SYS.semop:
    case SYS.semtimedop:
      return 'lock';
    default:
      return 'other';
  }
}

/** Starts sampling `pids` every millisecond; `stop()` ends it and gives the shares. */
export function sampleWaits(pids: ReadonlySet<number>): { stop(): WaitShares | null } {
  const counts: Record<Category, number> = {
    cpu: 0,
    flush: 0,
    walWrite: 0,
    client: 0,
    lock: 0,
    other: 0,
  };
  let samples = 0;
  let readable = true;
  // Why 1 ms: the shortest timer Node keeps; a batch's COMMIT flush is 0.5–5 ms here.
  const timer = setInterval(() => {
    for (const pid of pids) {
      const c = classify(pid);
      if (c === null) {
        readable = false;
        continue;
      }
      counts[c]++;
      samples++;
    }
  }, 1);
  return {
    stop(): WaitShares | null {
      clearInterval(timer);
      if (!readable || samples === 0) return null;
      const share = (c: Category): number => counts[c] / samples;
      return {
        samples,
        cpu: share('cpu'),
        flush: share('flush'),
        walWrite: share('walWrite'),
        client: share('client'),
        lock: share('lock'),
        other: share('other'),
      };
    },
  };
}

/** One line of {@link WaitShares}. */
export function printWaits(run: number, w: WaitShares | null): void {
  if (w === null) {
    console.log(`    waits, run ${run}: apply backends' /proc not readable`);
    return;
  }
  const pct = (x: number): string => `${Math.round(100 * x)} %`;
  console.log(
    `    waits, run ${run} (${w.samples} samples of the apply backends): on CPU or runnable ${pct(w.cpu)}, ` +
      `WAL flush ${pct(w.flush)}, WAL write ${pct(w.walWrite)}, idle for the node ${pct(w.client)}, ` +
      `lock/latch ${pct(w.lock)}, other ${pct(w.other)}`,
  );
}
