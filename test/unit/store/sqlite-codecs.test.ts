/**
 * The SQLite store's row codecs (statements.ts): the one definition of each batch statement's
 * parameters, which the inline path binds as arrays and the writer thread receives in columns.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { batchOps } from '../../../src/store/sqlite/operations.js';
import { sqliteStore } from '../../../src/store/sqlite/sqlite-store.js';
import {
  COMMAND_INSERT,
  SQL,
  rowValues,
  type RowCodec,
} from '../../../src/store/sqlite/statements.js';
import { SqliteWriter, encodeOps, type RecordOp } from '../../../src/store/sqlite/writer.js';
import {
  batch,
  child,
  command,
  commandUpdate,
  fullCommand,
  task,
  taskUpdate,
  undo,
  undoUpdate,
} from '../../store-conformance/fixtures.js';

/** A batch with a row of every batch statement. */
function everyStatement(): ReturnType<typeof batch> {
  const parent = fullCommand(1, 1, 1);
  return batch({
    commandInserts: [parent, child(2, parent, 0)],
    taskInserts: [task(2, 0)],
    undoInserts: [undo(2, 0)],
    commandUpdates: [commandUpdate(command(2, { status: 'waiting' }))],
    taskUpdates: [taskUpdate(task(2, 0, { status: 'running' }))],
    undoUpdates: [undoUpdate(undo(2, 0, { status: 'done' }))],
    commandsSettled: [2],
    paramsUpgrades: [{ id: 2, paramsVersion: 2, params: { n: 2 } }],
    entityWrites: [
      { kind: 'k', id: 'a', value: { v: 1 }, commandId: 2, at: 5 },
      { kind: 'k', id: 'b', value: { v: 2 }, commandId: 2, at: 5 },
      { kind: 'k', id: 'a', value: null, commandId: 2, at: 6 },
      { kind: 'k', id: 'c', value: { v: 3 }, commandId: 2, at: 7 },
    ],
  });
}

describe('sqlite row codecs', () => {
  it("each batch statement's codec gives as many values as its SQL has parameters", () => {
    const ops = batchOps(everyStatement());
    expect(ops.map((op) => op.statement)).toEqual([
      'insertCommand', 'insertTask', 'insertUndo', 'updateCommand', 'updateTask', 'updateUndo',
      'settleCommand', 'upgradeParams', 'putEntity', 'deleteEntity', 'putEntity',
    ]); // prettier-ignore
    for (const op of ops) {
      const parameters = (SQL[op.statement as keyof typeof SQL].match(/\?/g) ?? []).length;
      expect([op.statement, op.codec.width]).toEqual([op.statement, parameters]);
      for (const r of op.records) expect(rowValues(op.codec, r)).toHaveLength(parameters);
    }
    expect(ops.slice(8).map((op) => op.records.map((w) => (w as { id: string }).id))).toEqual([
      ['a', 'b'],
      ['a'],
      ['c'],
    ]);
  });

  it('a codec giving other than its width is refused', () => {
    const short: RowCodec<number> = { width: 2, write: (n, out) => out.add(n) };
    expect(() => rowValues(short, 1)).toThrow(/a row of 1 values, not 2/);
  });

  it('a short string goes to the thread once per operation, however many rows hold it', () => {
    const ids = [1, 2, 3, 4, 5];
    const long = 'x'.repeat(40);
    const [op] = encodeOps(
      batchOps(batch({ commandInserts: ids.map((id) => command(id, { owner: long })) })),
      [],
    );
    const strings = op?.[6] as string[];
    // Once each: the type, status, child mode, failure policy, compensation, and the state (a
    // text many rows repeat, rows/state-text.ts); per row: params and the long owner (a text too long
    // to be looked up).
    expect(strings.filter((s) => s === 'test.cmd')).toHaveLength(1);
    expect(strings.filter((s) => s === 'pending')).toHaveLength(1);
    expect(strings.filter((s) => s === long)).toHaveLength(ids.length);
    expect(strings).toHaveLength(6 + 2 * ids.length);
  });

  it('shared strings read back as sent when a column changes its value or two columns share one', () => {
    // Each column remembers the string it held last: a column going back and forth between
    // values, and one value in two columns, must still read back row by row.
    const rows = [
      ['a', 'b', 1, 'a'],
      ['a', 'a', 2, 'b'],
      ['b', 'a', null, 'b'],
      ['a', 'c', 4, 'a'],
      ['c', 'c', 5, 'c'],
    ];
    const [op] = encodeOps([['insertCommand', rows, true]], []);
    const [, , width, count, tags, numbers, strings] = op as unknown as [
      string, boolean, number, number, Uint8Array, Float64Array, string[],
    ]; // prettier-ignore
    const back = Array.from({ length: count }, (_, r) =>
      Array.from({ length: width }, (_, c) => {
        const p = r * width + c;
        return tags[p] === 0 ? null : tags[p] === 1 ? numbers[p] : strings[numbers[p]!];
      }),
    );
    expect(back).toEqual(rows);
    expect([...strings].sort()).toEqual(['a', 'b', 'c']);
  });

  describe('in the writer thread', () => {
    let dir: string;
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'coco-codecs-'));
    });
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('a record whose codec gives other than its width fails the write, sending nothing', async () => {
      const path = join(dir, 'w.db');
      await sqliteStore({ path, writerThread: false }).migrate();
      const w = new SqliteWriter({ path, synchronous: 'FULL', busyTimeoutMs: 5_000 }, SQL);
      try {
        // One value short on the second record: concatenated, it would shift the next row.
        const drifting: RowCodec<number> = {
          width: COMMAND_INSERT.width,
          write(id, out) {
            const dropNulls = {
              add: (v: unknown) => (v === null ? undefined : out.add(v)),
              addShared: (text: string) => out.addShared(text),
            };
            COMMAND_INSERT.write(command(id), id === 2 ? dropNulls : out);
          },
        };
        const op: RecordOp<number> = {
          statement: 'insertCommand',
          records: [1, 2, 3],
          codec: drifting,
          mustChange: false,
        };
        expect(() => w.write([op])).toThrow(/insertCommand: a row of \d+ values, not 24/);
        await w.write(batchOps(batch({ commandInserts: [command(1)] })));
        const store = sqliteStore({ path, writerThread: false });
        expect((await store.getCommand(1))?.id).toBe(1);
        expect(await store.getCommand(2)).toBeNull();
        await store.close();
      } finally {
        await w.close();
      }
    });
  });
});
