/**
 * What bench/pg.ts makes of its measurements: the CPU accounting of the machine and of the
 * server's processes (Linux /proc; absent elsewhere), the {@link Result} and {@link Profile} of
 * one (pattern, nodes) and the lines that print them, and coco's ratio to the peers' figures
 * (`BENCH_PG_PEERS`).
 *
 * @module
 */
import { execSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { median, type OpCounts } from './lib.js';
import { CHILDREN, PATTERNS, type NodeRun, type Pattern } from './pg-common.js';

// -- CPU accounting (Linux /proc; absent elsewhere) --

const CLK_TCK = (() => {
  try {
    return Number(execSync('getconf CLK_TCK', { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** A reading of the CPU counters, in jiffies since boot. */
export interface CpuSample {
  /** Jiffies of the whole machine, all CPUs: busy (not idle, not iowait), total. */
  busy: number;
  total: number;
  /**
   * Jiffies (user + system) of each process named `postgres`, by process id. A process that exits
   * takes its jiffies with it, so two samples are compared process by process
   * ({@link postgresSince}).
   */
  postgresByPid: ReadonlyMap<number, number>;
  /** Jiffies of the processes in `ours` (this benchmark's backends). */
  ours: number;
  /** Jiffies of the processes in `apply` (the backends of the nodes' apply connections). */
  apply: number;
}

/** The CPU used over one measured run (jiffies), and the run's wall-clock seconds. */
export type CpuUse = Omit<CpuSample, 'postgresByPid'> & {
  /** Jiffies of the server's processes ({@link postgresSince}). */
  postgres: number;
  wall: number;
};

/**
 * Jiffies of the server's processes between two samples, process by process: those alive at
 * `after` count what they used since `before` (all of it if they started since). A backend that
 * exits between the samples (a closed connection, an autovacuum worker) is left out instead of
 * subtracting everything it ever used, which a difference of the totals did — it could even come
 * out negative.
 */
export function postgresSince(before: CpuSample, after: CpuSample): number {
  let jiffies = 0;
  for (const [pid, now] of after.postgresByPid)
    jiffies += Math.max(0, now - (before.postgresByPid.get(pid) ?? 0));
  return jiffies;
}

/** Reads the CPU counters; null where there is no /proc. */
export function cpuSample(
  ours: ReadonlySet<number> = new Set(),
  apply: ReadonlySet<number> = new Set(),
): CpuSample | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    const busy = total - f[3]! - f[4]!;
    const postgresByPid = new Map<number, number>();
    let oursJiffies = 0;
    let applyJiffies = 0;
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const close = stat.lastIndexOf(')');
        if (stat.slice(stat.indexOf('(') + 1, close) !== 'postgres') continue;
        const rest = stat.slice(close + 2).split(' ');
        // Fields 14 and 15 of stat (utime, stime); `rest` starts at field 3.
        const jiffies = Number(rest[11]) + Number(rest[12]);
        postgresByPid.set(Number(pid), jiffies);
        if (ours.has(Number(pid))) oursJiffies += jiffies;
        if (apply.has(Number(pid))) applyJiffies += jiffies;
      } catch {
        // The process ended meanwhile.
      }
    }
    return { busy, total, postgresByPid, ours: oursJiffies, apply: applyJiffies };
  } catch {
    return null;
  }
}

/** The CPU used between two samples taken `wall` seconds apart; null if either is missing. */
export function cpuUse(
  before: CpuSample | null,
  after: CpuSample | null,
  wall: number,
): CpuUse | null {
  if (!before || !after) return null;
  return {
    busy: after.busy - before.busy,
    total: after.total - before.total,
    postgres: postgresSince(before, after),
    ours: after.ours - before.ours,
    apply: after.apply - before.apply,
    wall,
  };
}

// -- one (pattern, nodes) --

/** The figures of one (pattern, nodes), as printed in its JSON line. */
export interface Result {
  bench: string;
  store: 'postgres';
  nodes: number;
  value: number;
  unit: string;
  rawLimit: number | null;
  ratio: number | null;
  runs: number[];
  rawRuns: number[];
  size: number;
  profile: Profile;
}

/** Where the time went, over the measured runs of one (pattern, nodes). */
export interface Profile {
  /** Batches committed per run (all nodes), and rows per batch. */
  batches: number;
  rowsPerBatch: number;
  rowWritesPerUnit: number;
  /** CPU of the node processes per command (or parent), µs; and in cores over the runs. */
  nodeCpuUsPerUnit: number;
  nodeCpuCores: number;
  /** Of it, the nodes' main threads alone (the rest: GC and compiler threads, libuv); null: no /proc. */
  nodeMainCpuUsPerUnit: number | null;
  /** Median share of a run during which a node's store had a batch to apply. */
  storeBusyShare: number;
  /**
   * Median share of a run during which a node's main thread was runnable but waited for a CPU
   * (the run queue: more runnable threads than cores); null without /proc.
   */
  nodeQueuedShare: number | null;
  /**
   * CPU of the server's processes, in cores: all of them (other sessions' too), and this
   * benchmark's backends alone (null: no /proc).
   */
  postgresCpuCores: number | null;
  ourBackendsCpuCores: number | null;
  /**
   * CPU of all the server's processes per unit, µs: over coco's runs, and over the raw-store
   * limit's (the same row writes through the same statements, one connection per node, no
   * engine). Their difference is what coco's batches cost the server beyond the rows
   * themselves (null: no /proc, or no raw run).
   */
  postgresCpuUsPerUnit: number | null;
  rawPostgresCpuUsPerUnit: number | null;
  /**
   * CPU of the server backends of the apply connections over the time their stores were busy:
   * near 1, the server's execution is the limit; well below, the time goes to the client
   * (serializing parameters, an event loop busy with engine work), the network or WAL flushes.
   */
  applyCpuOfBusy: number | null;
  /** Share of the machine's CPU time busy during the runs (null: no /proc). */
  machineBusyShare: number | null;
  /**
   * CPU of everything else (other processes on a shared machine, the kernel's own threads),
   * in cores: the noise the figures carry (null: no /proc).
   */
  otherCpuCores: number | null;
}

/** What was measured of one (pattern, nodes): the input of {@link reportMeasure}. */
export interface Measured {
  pattern: Pattern;
  /** Number of nodes. */
  n: number;
  /** Commands (one-task) or parents per run, over all nodes. */
  size: number;
  unit: string;
  repeats: number;
  /** Wall-clock seconds of each measured run. */
  seconds: number[];
  /** What each node reported of each run. */
  perRun: NodeRun[][];
  /** The CPU used over each run (empty without /proc). */
  cpu: CpuUse[];
  /** Row writes of every node and run, and the units (commands or parents) they were for. */
  ops: OpCounts;
  units: number;
  /** The raw-store limit of each repeat, units/s (empty with `BENCH_NO_RAW`). */
  rawRuns: number[];
  /** The CPU used over each raw-store run, and the units they applied in all. */
  rawCpu: CpuUse[];
  rawUnits: number;
  /** Units per raw-store transaction group. */
  rawPerBatch: number;
}

/**
 * The result of one (pattern, nodes), after printing it: the median line, the raw-store limit,
 * the profile, the statements traced (`BENCH_PG_TRACE`) and the JSON line.
 */
export function reportMeasure(m: Measured): Result {
  const { pattern, n, size, unit, seconds, perRun, cpu, ops, units, rawRuns } = m;
  const runs = seconds.map((s) => size / s);
  const value = median(runs);
  const rawLimit = rawRuns.length > 0 ? median(rawRuns) : null;
  const all = perRun.flat();
  const rows =
    ops.commandInserts +
    ops.commandUpdates +
    ops.commandsSettled +
    ops.taskInserts +
    ops.taskUpdates;
  const wallTotal = seconds.reduce((a, b) => a + b, 0);
  const cpuTotals = cpu.reduce(
    (a, c) => ({
      busy: a.busy + c.busy,
      total: a.total + c.total,
      postgres: a.postgres + c.postgres,
      ours: a.ours + c.ours,
      apply: a.apply + c.apply,
      wall: a.wall + c.wall,
    }),
    { busy: 0, total: 0, postgres: 0, ours: 0, apply: 0, wall: 0 },
  );
  const round = (x: number, digits = 0): number => +x.toFixed(digits);
  const storeBusyMs = all.reduce((a, x) => a + x.storeBusyMs, 0);
  const profile: Profile = {
    batches: round(ops.batches / m.repeats),
    rowsPerBatch: round(rows / Math.max(1, ops.batches)),
    rowWritesPerUnit: round(rows / units, 2),
    nodeCpuUsPerUnit: round((all.reduce((a, x) => a + x.cpuMs, 0) * 1000) / units),
    nodeCpuCores: round(all.reduce((a, x) => a + x.cpuMs, 0) / 1000 / wallTotal, 2),
    nodeMainCpuUsPerUnit: all.every((x) => x.mainCpuMs !== null)
      ? round((all.reduce((a, x) => a + x.mainCpuMs!, 0) * 1000) / units)
      : null,
    storeBusyShare: round(
      median(perRun.flatMap((run, r) => run.map((x) => x.storeBusyMs / 1000 / seconds[r]!))),
      2,
    ),
    nodeQueuedShare: all.every((x) => x.mainQueuedMs !== null)
      ? round(
          median(perRun.flatMap((run, r) => run.map((x) => x.mainQueuedMs! / 1000 / seconds[r]!))),
          2,
        )
      : null,
    postgresCpuCores:
      cpu.length > 0 ? round(cpuTotals.postgres / CLK_TCK / cpuTotals.wall, 2) : null,
    ourBackendsCpuCores:
      cpu.length > 0 ? round(cpuTotals.ours / CLK_TCK / cpuTotals.wall, 2) : null,
    postgresCpuUsPerUnit:
      cpu.length > 0 ? round((cpuTotals.postgres / CLK_TCK / units) * 1e6) : null,
    rawPostgresCpuUsPerUnit:
      m.rawCpu.length > 0 && m.rawUnits > 0
        ? round((m.rawCpu.reduce((a, c) => a + c.postgres, 0) / CLK_TCK / m.rawUnits) * 1e6)
        : null,
    applyCpuOfBusy:
      cpu.length > 0 && storeBusyMs > 0
        ? round(cpuTotals.apply / CLK_TCK / (storeBusyMs / 1000), 2)
        : null,
    machineBusyShare: cpu.length > 0 ? round(cpuTotals.busy / cpuTotals.total, 2) : null,
    otherCpuCores: null,
  };
  if (cpu.length > 0) {
    const cores = (cpuTotals.busy / cpuTotals.total) * cpus().length;
    profile.otherCpuCores = round(
      Math.max(0, cores - profile.nodeCpuCores - (profile.postgresCpuCores ?? 0)),
      2,
    );
  }
  const result: Result = {
    bench: `pg-${pattern}`,
    store: 'postgres',
    nodes: n,
    value: Math.round(value),
    unit,
    rawLimit: rawLimit === null ? null : Math.round(rawLimit),
    ratio: rawLimit === null ? null : round(value / rawLimit, 3),
    runs: runs.map((x) => Math.round(x)),
    rawRuns: rawRuns.map((x) => Math.round(x)),
    size,
    profile,
  };
  const shape =
    pattern === 'one-task'
      ? `${size} one-task commands`
      : `${size} parents × ${CHILDREN[pattern]} ${pattern === 'chain' ? 'serial' : 'concurrent'} children`;
  console.log(
    `pg ${pattern} with ${n} node${n > 1 ? 's' : ''}: median ${result.value} ${unit} [${result.runs.join(' · ')}] (${shape}, split evenly)`,
  );
  if (rawLimit !== null)
    console.log(
      `  raw-store limit (${n} connection${n > 1 ? 's' : ''} applying the same row writes, ${m.rawPerBatch} per transaction group): ${result.rawLimit} ${unit} [${result.rawRuns.join(' · ')}]; coco = ${Math.round((value / rawLimit) * 100)}% of it`,
    );
  console.log(
    `  profile: ${profile.batches} batches/run, ${profile.rowsPerBatch} rows/batch, ${profile.rowWritesPerUnit} row writes/${pattern === 'one-task' ? 'command' : 'parent'}; ` +
      `node CPU ${profile.nodeCpuUsPerUnit} µs/${pattern === 'one-task' ? 'command' : 'parent'} (main thread ${profile.nodeMainCpuUsPerUnit ?? '?'}; ${profile.nodeCpuCores} cores), ` +
      `store busy ${Math.round(profile.storeBusyShare * 100)}% of a run per node, ` +
      `node main thread waiting for a CPU ${profile.nodeQueuedShare === null ? '?' : Math.round(profile.nodeQueuedShare * 100)}% of a run, ` +
      `apply backends ${profile.applyCpuOfBusy === null ? '?' : Math.round(profile.applyCpuOfBusy * 100)}% on CPU while busy, postgres ${profile.postgresCpuCores ?? '?'} cores (this run's backends ${profile.ourBackendsCpuCores ?? '?'}; ${profile.postgresCpuUsPerUnit ?? '?'} µs/${pattern === 'one-task' ? 'command' : 'parent'}, raw-store limit ${profile.rawPostgresCpuUsPerUnit ?? '?'}), machine busy ${profile.machineBusyShare === null ? '?' : Math.round(profile.machineBusyShare * 100)}% (other processes ${profile.otherCpuCores ?? '?'} cores)`,
  );
  printStatements(all);
  console.log(JSON.stringify(result));
  return result;
}

/** With `BENCH_PG_TRACE`: the statements the nodes sent, by name, over all nodes and runs. */
function printStatements(all: readonly NodeRun[]): void {
  const traced = all.filter((x) => x.statements);
  if (traced.length === 0) return;
  const byName = new Map<string, { n: number; ms: number }>();
  for (const x of traced)
    for (const [name, st] of Object.entries(x.statements!)) {
      const s = byName.get(name) ?? { n: 0, ms: 0 };
      s.n += st.n;
      s.ms += st.ms;
      byName.set(name, s);
    }
  const list = [...byName].sort((a, b) => b[1].ms - a[1].ms);
  console.log(
    `  statements (all nodes and runs; send → answer): ${list
      .map(([name, s]) => `${name} ${s.n}× ${(s.ms / s.n).toFixed(2)} ms = ${Math.round(s.ms)} ms`)
      .join(', ')}`,
  );
}

// -- peers (optional) --

/** One of coco's figures (on one node) divided by one peer's. */
export interface PeerRatio {
  bench: string;
  peer: string;
  ratio: number;
}

/** The peers' medians by pattern (`peer-one-task` ...), from a saved `bench -- peers` output. */
function peerFigures(file: string): Map<Pattern, { peer: string; value: number; unit: string }[]> {
  const out = new Map<Pattern, { peer: string; value: number; unit: string }[]>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const j = JSON.parse(line) as {
        bench?: unknown;
        peer?: unknown;
        value?: unknown;
        unit?: unknown;
      };
      if (
        typeof j.bench !== 'string' ||
        !j.bench.startsWith('peer-') ||
        typeof j.value !== 'number'
      )
        continue;
      const pattern = j.bench.slice('peer-'.length) as Pattern;
      if (!PATTERNS.includes(pattern)) continue;
      const list = out.get(pattern) ?? [];
      list.push({ peer: String(j.peer), value: j.value, unit: String(j.unit) });
      out.set(pattern, list);
    } catch {
      // Not a result line.
    }
  }
  return out;
}

/**
 * coco's one-node results as a multiple of each peer's figure for the same pattern, read from
 * `file` (a saved `bench -- peers` output); prints one line per ratio.
 */
export function peerRatios(results: readonly Result[], file: string): PeerRatio[] {
  const peers = peerFigures(file);
  const ratios: PeerRatio[] = [];
  for (const r of results.filter((x) => x.nodes === 1)) {
    for (const p of peers.get(r.bench.slice('pg-'.length) as Pattern) ?? []) {
      const ratio = +(r.value / p.value).toFixed(2);
      ratios.push({ bench: r.bench, peer: p.peer, ratio });
      console.log(
        `  ${r.bench}, 1 node: ${r.value} ${r.unit} = ${ratio} × ${p.peer} (${p.value} ${p.unit})`,
      );
    }
  }
  return ratios;
}
