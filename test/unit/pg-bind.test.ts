/**
 * The apply connection's Bind messages (store/postgres/bind.ts) are byte for byte those of
 * node-postgres' serializer, which it replaces on that connection — sent in chunks, the large
 * Buffer parameters as they are, the chunks' concatenation is the serializer's message; and the
 * replacement is installed only where node-postgres' connection has what it relies on. No server.
 */
import { createRequire } from 'node:module';
import { serialize } from 'pg-protocol';
import { describe, expect, it } from 'vitest';
import { bindChunks, useExactBind, type BindConfig } from '../../src/store/postgres/bind.js';
import { batchSteps } from '../../src/store/postgres/batch-steps.js';
import { stepQuery } from '../../src/store/postgres/applier.js';
import { buildSql } from '../../src/store/postgres/statements.js';
import { emptyBatch, type ChangeBatch } from '../../src/store/port.js';
import type { CommandRecord } from '../../src/core/records.js';
import { commandRecord } from '../support/records.js';

/** node-postgres' own parameter mapper, as its queries pass it to `bind`. */
const { prepareValue } = createRequire(import.meta.url)('pg/lib/utils.js') as {
  prepareValue: (v: unknown) => unknown;
};

const serializer = (c: BindConfig): Buffer => serialize.bind(c as never);
/** The message the chunks make, in one buffer. */
const message = (c: BindConfig): Buffer => Buffer.concat(bindChunks(c));

function command(id: number, extra: Partial<CommandRecord> = {}): CommandRecord {
  return commandRecord(id, { type: 'unit.bind', params: { id, text: 'ü€😀 "q" \\' }, ...extra });
}

describe('the apply connection’s Bind messages', () => {
  it('are the serializer’s bytes, whatever the parameters', () => {
    const configs: BindConfig[] = [
      {},
      { statement: 'coco_x', values: [] },
      { portal: 'p', statement: 'ständig', values: ['a'], binary: true },
      {
        statement: 'coco_mixed',
        values: [null, undefined, '', 'ascii', 'ü€😀\u0000x', 7, -1.5, 2 ** 53, true, [1, null, 'a"b'], Buffer.alloc(0), Buffer.from([0, 1, 255])],
        valueMapper: prepareValue,
      }, // prettier-ignore
      { statement: 'no_mapper', values: ['x', null, Buffer.from('yz')] },
      {
        statement: 'big',
        values: [Buffer.alloc(300_000, 7), 'z'.repeat(70_000), Buffer.alloc(5, 1)],
      },
    ];
    for (const c of configs) {
      expect(message(c).equals(serializer(c))).toBe(true);
    }
  });

  it('send large Buffer parameters as they are, between slices of the rest', () => {
    const large = (n: number, fill: number): Buffer => Buffer.alloc(n, fill);
    const a = large(1024, 1);
    const b = large(100_000, 2);
    const c = large(5_000, 3);
    const configs: BindConfig[] = [
      // A large parameter first, last, alone, next to another, among nulls, strings and small
      // Buffers; a Buffer just below the threshold; a string above it (copied: not a Buffer).
      { statement: 'first', values: [a, 'x', null] },
      { statement: 'last', values: [null, 'ü€😀', Buffer.from([9]), b] },
      { statement: 'alone', values: [b], binary: true },
      { statement: 'adjacent', values: [a, b, c] },
      {
        portal: 'p',
        statement: 'mixed',
        values: [null, a, undefined, '', Buffer.alloc(1023, 4), 7, b, 'z'.repeat(70_000), c, true],
        valueMapper: prepareValue,
      }, // prettier-ignore
    ];
    for (const config of configs) {
      const chunks = bindChunks(config);
      expect(Buffer.concat(chunks).equals(serializer(config))).toBe(true);
      // Each parameter of 1 KB or more is a chunk of its own, the very Buffer passed (no copy);
      // the rest (the 1023-byte Buffer and the 70 KB string included) is copied.
      const passed = (config.values ?? []).filter((v) => v instanceof Buffer && v.length >= 1024);
      expect(chunks.filter((k) => passed.includes(k))).toEqual(passed);
      expect(chunks.length).toBe(2 * passed.length + 1);
    }
    // Without such a parameter, one chunk.
    expect(bindChunks({ statement: 's', values: ['v', Buffer.alloc(1023)] })).toHaveLength(1);
  });

  it('are the serializer’s bytes for a batch’s statements (binary column buffers)', () => {
    const sql = buildSql('unit');
    const batch: ChangeBatch = {
      ...emptyBatch(),
      commandInserts: Array.from({ length: 500 }, (_, i) => command(i + 1)),
      commandUpdates: [{ ...command(1, { status: 'waiting', updatedAt: 2 }) }],
    };
    const steps = batchSteps(sql, batch, 'n1');
    expect(steps.length).toBe(2);
    for (const step of steps) {
      const q = stepQuery(sql, step);
      const c: BindConfig = { statement: q.name!, values: q.values!, valueMapper: prepareValue };
      expect(message(c).equals(serializer(c))).toBe(true);
      // The 500-row insert's column buffers are sent as they are.
      if (step.name === 'insertCommands') expect(bindChunks(c).length).toBeGreaterThan(1);
    }
  });

  it('fail as the serializer does when a value cannot be mapped', () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const c: BindConfig = { statement: 's', values: [circular], valueMapper: prepareValue };
    expect(() => serializer(c)).toThrow();
    expect(() => bindChunks(c)).toThrow();
  });

  it('replace the connection’s bind only where it has bind and _send', () => {
    const sent: Buffer[] = [];
    const connection = {
      bind: (_config: BindConfig): void => {
        throw new Error('the serializer’s bind was used');
      },
      _send: (b: Buffer) => sent.push(b),
    };
    expect(useExactBind(connection)).toBe(true);
    const c: BindConfig = { statement: 's', values: ['v', null], valueMapper: prepareValue };
    connection.bind(c);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.equals(serializer(c))).toBe(true);
    // A message with large Buffer parameters: its chunks, in order, through _send.
    sent.length = 0;
    const big = Buffer.alloc(10_000, 5);
    const chunked: BindConfig = {
      statement: 't',
      values: [big, 'w', big],
      valueMapper: prepareValue,
    };
    connection.bind(chunked);
    expect(sent).toHaveLength(5);
    expect(Buffer.concat(sent).equals(serializer(chunked))).toBe(true);
    // Another node-postgres version: its own bind (the serializer's message) stays.
    const ownBind = (): void => undefined;
    const other = { bind: ownBind };
    expect(useExactBind(other)).toBe(false);
    expect(other.bind).toBe(ownBind);
    expect(useExactBind(undefined)).toBe(false);
  });
});
