/**
 * The engine's agent rows: the infos of one turn go in one write, one write is in flight at a
 * time (so a later state of an agent is never overtaken by an earlier one on a store that runs
 * statements concurrently), and what arrives meanwhile goes into the next, the latest per agent;
 * a row deleted (a forgotten agent) is not written again by news received before.
 */
import { describe, expect, it } from 'vitest';
import type { Logger } from '../../src/core/command-type.js';
import type { AgentRecord } from '../../src/core/records.js';
import { AgentRows } from '../../src/engine/agent-rows.js';
import type { Store } from '../../src/store/port.js';

const silent: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};

function row(id: string, state: 'up' | 'down', at: number): AgentRecord {
  return {
    id,
    address: null,
    state,
    bootId: null,
    lastSeenAt: null,
    lastError: null,
    updatedAt: at,
  };
}

async function turn(): Promise<void> {
  await new Promise((r) => setImmediate(r));
}

describe('AgentRows', () => {
  it('writes one batch at a time, the latest state of each agent in the next', async () => {
    const calls: AgentRecord[][] = [];
    const answers: (() => void)[] = [];
    const store = {
      saveAgents: (records: readonly AgentRecord[]) => {
        calls.push([...records]);
        return new Promise<void>((resolve) => answers.push(resolve));
      },
    } as unknown as Store;
    const rows = new AgentRows(store, silent);

    rows.save(row('a', 'up', 1));
    rows.save(row('b', 'up', 1));
    await turn();
    expect(calls).toEqual([[row('a', 'up', 1), row('b', 'up', 1)]]);

    // While that write is in flight, nothing else is sent; later states coalesce.
    rows.save(row('a', 'down', 2));
    await turn();
    rows.save(row('c', 'up', 3));
    rows.save(row('a', 'up', 4));
    await turn();
    expect(calls).toHaveLength(1);

    answers[0]!();
    await turn();
    await turn();
    expect(calls).toHaveLength(2);
    expect(calls[1]).toEqual([row('a', 'up', 4), row('c', 'up', 3)]);
    expect(rows.writes).toBe(2);

    // flush() sends what is pending once the write in flight is done.
    rows.save(row('b', 'down', 5));
    const flushed = rows.flush();
    answers[1]!();
    await turn();
    expect(calls[2]).toEqual([row('b', 'down', 5)]);
    answers[2]!();
    await flushed;
    expect(rows.writes).toBe(3);
  });

  it('deletes a row after the write in flight, and drops what is pending of it', async () => {
    const rowsStored = new Map<string, AgentRecord>();
    const answers: (() => void)[] = [];
    const store = {
      saveAgents: (records: readonly AgentRecord[]) =>
        new Promise<void>((resolve) =>
          answers.push(() => {
            for (const r of records) rowsStored.set(r.id, r);
            resolve();
          }),
        ),
      deleteAgent: (id: string) => Promise.resolve(rowsStored.delete(id)),
    } as unknown as Store;
    const rows = new AgentRows(store, silent);
    rows.save(row('a', 'up', 1));
    await turn();
    // News of `a` pending behind the write in flight that holds it: neither outlives the delete.
    rows.save(row('a', 'down', 2));
    const deleted = rows.delete('a');
    answers[0]!();
    expect(await deleted).toBe(true);
    await turn();
    expect(answers).toHaveLength(1);
    expect(rowsStored.has('a')).toBe(false);
    expect(await rows.delete('a')).toBe(false);
  });
});
