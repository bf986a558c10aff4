/**
 * How the PostgreSQL store's apply connection writes a batch (store/postgres/applier.ts
 * `writeBatch`, batch-steps.ts): its statements leave in one write, and a batch's rounds
 * (updates of one row twice) stay apart. No server: a client that records what it is asked.
 */
import fc from 'fast-check';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { writeBatch } from '../../src/store/postgres/applier.js';
import { batchSteps } from '../../src/store/postgres/batch-steps.js';
import { buildSql } from '../../src/store/postgres/statements.js';
import { emptyBatch, type ChangeBatch, type TaskUpdate } from '../../src/store/port.js';

const sql = buildSql('unit');

/** A client whose socket counts corks, and which notes whether each query came while corked. */
function recordingClient() {
  let corked = 0;
  const log: string[] = [];
  const stream = {
    cork: () => void corked++,
    uncork: () => {
      corked--;
      log.push('uncork');
    },
  };
  const client = {
    connection: { stream },
    query: (q: string | pg.QueryConfig) => {
      log.push(`${corked > 0 ? 'corked' : 'open'} ${typeof q === 'string' ? q : q.name}`);
      return Promise.resolve({ rows: [] });
    },
  };
  return { client: client as unknown as pg.PoolClient, log, corked: () => corked };
}

const task = (commandId: number, ordinal: number, status: TaskUpdate['status']): TaskUpdate => ({
  commandId,
  ordinal,
  status,
  result: null,
  error: null,
  stopRequested: false,
  endedAt: null,
  deadlineAt: null,
});

describe('a batch on the apply connection', () => {
  it('leaves in one write: the socket is corked from BEGIN to COMMIT', async () => {
    const batch: ChangeBatch = { ...emptyBatch(), taskUpdates: [task(1, 0, 'running')] };
    const { client, log, corked } = recordingClient();
    await writeBatch(client, sql, [], batchSteps(sql, batch, 'n1'), true);
    expect(log).toEqual(['corked BEGIN', 'corked coco_updateTasks', 'corked COMMIT', 'uncork']);
    expect(corked()).toBe(0);
  });

  it('updates of one task twice go in two rounds, whichever form its key takes', () => {
    const huge = 2 ** 40; // beyond the numeric task keys: a string key
    for (const id of [7, huge]) {
      const batch: ChangeBatch = {
        ...emptyBatch(),
        taskUpdates: [task(id, 0, 'running'), task(id, 1, 'running'), task(id, 0, 'succeeded')],
      };
      const steps = batchSteps(sql, batch, 'n1');
      expect(steps.map((s) => s.name)).toEqual(['updateTasks', 'updateTasks']);
      // The expected row counts (parameter after the column arrays): 2, then 1.
      expect(steps.map((s) => s.values.at(-2))).toEqual([2, 1]);
    }
    // Keys of different commands never meet: 1/65536 as a number is not 2/0.
    const apart: ChangeBatch = {
      ...emptyBatch(),
      taskUpdates: [task(1, 65_535, 'running'), task(2, 0, 'running'), task(1, 2 ** 16, 'running')],
    };
    expect(batchSteps(sql, apart, 'n1').map((s) => s.name)).toEqual(['updateTasks']);
  });
  it('splits any batch into rounds as a plain count of each key does, call after call', () => {
    // Keys from a few commands and ordinals (repeats likely), some beyond the numeric task keys
    // (strings), in batches of every size: the key table is reused and grown across calls.
    const key = fc.record({
      id: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.constant(2 ** 40)),
      ordinal: fc.integer({ min: 0, max: 3 }),
    });
    fc.assert(
      fc.property(fc.array(fc.array(key, { maxLength: 300 }), { maxLength: 4 }), (calls) => {
        for (const keys of calls) {
          const batch: ChangeBatch = {
            ...emptyBatch(),
            taskUpdates: keys.map((k) => task(k.id, k.ordinal, 'running')),
          };
          // Round r holds the rows that are the (r + 1)-th of their key, in order.
          const seen = new Map<string, number>();
          const sizes: number[] = [];
          for (const k of keys) {
            const r = seen.get(`${k.id}/${k.ordinal}`) ?? 0;
            seen.set(`${k.id}/${k.ordinal}`, r + 1);
            sizes[r] = (sizes[r] ?? 0) + 1;
          }
          const steps = batchSteps(sql, batch, 'n1');
          expect(steps.map((s) => s.values.at(-2))).toEqual(sizes);
        }
      }),
      { numRuns: 300 },
    );
  });
  it('splits a statement past the size the key table keeps the same way', () => {
    // 70,000 rows: past the 65,536 the table keeps between statements (one sized for it then).
    const rows = Array.from({ length: 70_000 }, (_, i) => task(i + 1, 0, 'running'));
    rows.push(task(5, 0, 'succeeded'));
    const steps = batchSteps(sql, { ...emptyBatch(), taskUpdates: rows }, 'n1');
    expect(steps.map((s) => s.values.at(-2))).toEqual([70_000, 1]);
    // And the table serves the next statement as before.
    const small = [task(1, 0, 'running'), task(1, 0, 'succeeded')];
    expect(
      batchSteps(sql, { ...emptyBatch(), taskUpdates: small }, 'n1').map((s) => s.values.at(-2)),
    ).toEqual([1, 1]);
  });
});
