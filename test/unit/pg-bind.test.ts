/**
 * The apply connection's Bind messages (store/postgres/bind.ts) are byte for byte those of
 * node-postgres' serializer, which it replaces on that connection; and the replacement is
 * installed only where node-postgres' connection has what it relies on. No server.
 */
import { createRequire } from 'node:module';
import { serialize } from 'pg-protocol';
import { describe, expect, it } from 'vitest';
import { bindMessage, useExactBind, type BindConfig } from '../../src/store/postgres/bind.js';
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
    for (const c of configs) expect(bindMessage(c).equals(serializer(c))).toBe(true);
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
      expect(bindMessage(c).equals(serializer(c))).toBe(true);
    }
  });

  it('fail as the serializer does when a value cannot be mapped', () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const c: BindConfig = { statement: 's', values: [circular], valueMapper: prepareValue };
    expect(() => serializer(c)).toThrow();
    expect(() => bindMessage(c)).toThrow();
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
    const other = { bind: () => undefined };
    expect(useExactBind(other)).toBe(false);
    expect(useExactBind(undefined)).toBe(false);
  });
});
