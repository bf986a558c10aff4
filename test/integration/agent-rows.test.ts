/**
 * Agents' rows are written in batches: 10,000 agents coming up (the broker telling of each) are
 * a few store writes, not one durable transaction each on the event loop, and the latest state
 * of each agent is what the store keeps.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import type { AgentInfo } from '../../src/brokers/port.js';
import { defineCommand } from '../../src/core/command-type.js';
import type { AgentRecord } from '../../src/core/records.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import { sqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { FAST, tempDir } from '../support/harness.js';
import { brokerWithInfos } from '../support/info-broker.js';

const AGENTS = 10_000;
const cmd = defineCommand({ name: 'rows.noop', schema: z.object({}), execute() {} });

let engine: Engine | null = null;
let dir: string | null = null;
afterEach(async () => {
  await engine?.stop();
  engine = null;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

function info(i: number, up: boolean): AgentInfo {
  return {
    agentId: `agent-${String(i).padStart(5, '0')}`,
    address: `http://10.0.${i >> 8}.${i & 255}:7391`,
    up,
    bootId: up ? `boot-${i}` : null,
    lastSeenAt: up ? 1_000 + i : null,
  };
}

describe('agent rows', () => {
  it('are written in a few batches for 10,000 agents, the latest state of each winning', async () => {
    dir = tempDir();
    const store = sqliteStore({ path: join(dir, 'coco.db') });
    // Every store write of agent rows, by the number of rows it carried.
    const writes: number[] = [];
    const saveAgent = store.saveAgent.bind(store);
    store.saveAgent = (r: AgentRecord) => {
      writes.push(1);
      return saveAgent(r);
    };
    const saveAgents = store.saveAgents.bind(store);
    store.saveAgents = (rs: readonly AgentRecord[]) => {
      writes.push(rs.length);
      return saveAgents(rs);
    };
    const { broker, tell } = brokerWithInfos();
    engine = createEngine({ store, agents: broker, commands: [cmd], tuning: FAST });
    await engine.start();

    // All come up in one turn (a broker telling a new listener of every agent it knows)…
    for (let i = 0; i < AGENTS; i++) tell(info(i, true));
    // …then go down over many turns, while writes are in flight.
    for (let i = 0; i < AGENTS; i += 500) {
      for (let j = i; j < i + 500; j++) tell(info(j, false));
      await new Promise((r) => setImmediate(r));
    }
    await vi.waitFor(
      async () => {
        const rows = await store.listAgents();
        expect(rows).toHaveLength(AGENTS);
        expect(rows.every((r) => r.state === 'down' && r.bootId === null)).toBe(true);
      },
      { timeout: 20_000, interval: 20 },
    );
    // A handful of transactions (here 2: 10,000 then 9,500), not 20,000 (one per info).
    expect(writes.length).toBeLessThanOrEqual(25);
    expect(writes.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(2 * AGENTS);
    const rows = await store.listAgents();
    expect(rows[7]).toEqual({
      id: 'agent-00007',
      address: 'http://10.0.0.7:7391',
      state: 'down',
      bootId: null,
      lastSeenAt: null,
      lastError: null,
      updatedAt: expect.any(Number) as number,
    });
  }, 60_000);

  it('pending when the engine stops are written before the store closes', async () => {
    dir = tempDir();
    const path = join(dir, 'coco.db');
    const { broker, tell } = brokerWithInfos();
    engine = createEngine({
      store: sqliteStore({ path }),
      agents: broker,
      commands: [cmd],
      tuning: FAST,
    });
    await engine.start();
    for (let i = 0; i < 100; i++) tell(info(i, true));
    await engine.stop();
    engine = null;
    const reopened = sqliteStore({ path });
    expect(await reopened.listAgents()).toHaveLength(100);
    await reopened.close();
  });
});
