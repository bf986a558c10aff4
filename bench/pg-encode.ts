/**
 * The PostgreSQL node's CPU per batch, no server: replays the batches of a run captured by
 * bench/pg.ts (`BENCH_PG_CAPTURE=<file>`, node 1's last run) through what the apply connection
 * does with them on this side — `batchSteps` (the column arrays and their encoding) and
 * node-postgres' protocol messages for each statement (`pg-protocol`'s serializer: Parse once
 * per statement name, then Bind — built as the apply connection builds it,
 * src/store/postgres/bind.ts, or with `BENCH_ENCODE_BIND=serializer` as node-postgres would —
 * Describe, Execute, Sync, as a prepared query sends them) — and prints the CPU (user + system,
 * this process: the collector's threads included) per unit of the captured run and per batch.
 * Steady where the wall-clock benches are not: no server, no socket, the same batches every
 * time; interleave runs of two builds to compare them.
 *
 * `node dist/bench/pg-encode.js <file>`; env `BENCH_ENCODE_ROUNDS` (20: replays of the whole
 * capture after 5 warm-up replays, the figure the median of them). Prints one JSON line last.
 */
import { readFileSync } from 'node:fs';
import { serialize } from 'pg-protocol';
import { createRequire } from 'node:module';
import { stepQuery } from '../src/store/postgres/applier.js';
import { bindChunks } from '../src/store/postgres/bind.js';
import { batchSteps } from '../src/store/postgres/batch-steps.js';
import { buildSql } from '../src/store/postgres/statements.js';
import type { ChangeBatch } from '../src/store/port.js';
import { median } from './lib.js';

/** node-postgres' own parameter mapper (numbers to text, Buffers as they are), as `bind` uses it. */
const { prepareValue } = createRequire(import.meta.url)('pg/lib/utils.js') as {
  prepareValue: (v: unknown) => unknown;
};

const file = process.argv[2];
if (file === undefined) {
  console.error('usage: pg-encode <capture file> (bench/pg.ts BENCH_PG_CAPTURE)');
  process.exit(2);
}
const { units, batches } = JSON.parse(readFileSync(file, 'utf8')) as {
  units: number;
  batches: ChangeBatch[];
};
/**
 * `BENCH_ENCODE_BIND=serializer`: Bind messages as node-postgres builds them, not as the apply
 * connection does (bind.ts).
 */
const exact = process.env.BENCH_ENCODE_BIND !== 'serializer';
const ROUNDS = Number(process.env.BENCH_ENCODE_ROUNDS ?? 20);
const WARMUP = 5;
const sql = buildSql('bench_encode');
const parsed = new Set<string>();
let bytes = 0;

/** One replay of the capture: every batch's statements and their protocol messages. */
function replay(): void {
  bytes = 0;
  for (const batch of batches) {
    const steps = batchSteps(sql, batch, 'n1');
    for (const step of steps) {
      const q = stepQuery(sql, step);
      if (!parsed.has(q.name!)) {
        parsed.add(q.name!);
        bytes += serialize.parse({ name: q.name, text: q.text, types: [] }).length;
      }
      const config = { statement: q.name, values: q.values as never, valueMapper: prepareValue };
      if (exact) for (const chunk of bindChunks(config)) bytes += chunk.length;
      else bytes += serialize.bind(config).length;
      bytes += serialize.describe({ type: 'P', name: '' }).length;
      bytes += serialize.execute().length + serialize.sync().length;
    }
  }
}

const perUnit: number[] = [];
for (let r = 0; r < WARMUP + ROUNDS; r++) {
  const before = process.cpuUsage();
  replay();
  const cpu = process.cpuUsage(before);
  if (r >= WARMUP) perUnit.push((cpu.user + cpu.system) / units);
}
const us = median(perUnit);
console.log(
  `${batches.length} batches, ${units} units, ${(bytes / 1e6).toFixed(2)} MB sent per replay: ` +
    `node CPU ${us.toFixed(1)} µs/unit (median of ${ROUNDS}; ${perUnit.map((x) => x.toFixed(1)).join(' · ')})`,
);
console.log(
  JSON.stringify({ bench: 'pg-encode', units, batches: batches.length, bytes, usPerUnit: us }),
);
