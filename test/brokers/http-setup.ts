/**
 * Shared setup of the HTTP broker tests: fake agents on 127.0.0.1, a broker over them, and
 * cleanup after each test.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { HttpBroker, type HttpBrokerOptions } from '../../src/brokers/http/broker.js';
import type { CommandType, Logger } from '../../src/core/command-type.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import type { EngineTuning } from '../../src/engine/options.js';
import { sqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { tempDir } from '../support/harness.js';
import { FakeAgentServer } from './fake-agent.js';
export { rejection } from '../support/errors.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Log lines captured by {@link captureLogger}. */
export interface LogLine {
  readonly level: keyof Logger;
  readonly obj: object;
  readonly msg: string | undefined;
}

/** A logger that keeps its lines. */
export function captureLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: keyof Logger) =>
    (obj: object, msg?: string): void =>
      void lines.push({ level, obj, msg });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Fake agents plus a broker over them (closed after the test). */
export async function setup(
  ids: readonly string[] = ['a1'],
  options: Partial<HttpBrokerOptions> = {},
): Promise<{
  server: FakeAgentServer;
  broker: HttpBroker;
  logger: ReturnType<typeof captureLogger>;
}> {
  const server = await FakeAgentServer.start({ agents: ids });
  cleanups.push(() => server.close());
  const logger = captureLogger();
  const broker = new HttpBroker({
    caller: 'engine-test',
    agents: server.configs(),
    longPoll: false,
    logger,
    ...options,
  });
  cleanups.push(() => broker.close());
  return { server, broker, logger };
}

/**
 * The real engine over `broker`, on SQLite in a temp folder, started; it, the broker and the
 * folder are closed and removed after the test.
 */
export async function engineOver(
  broker: HttpBroker,
  commands: readonly CommandType[],
  tuning: EngineTuning,
): Promise<Engine> {
  cleanups.push(() => broker.close());
  const dir = tempDir();
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  const engine = createEngine({
    store: sqliteStore({ path: join(dir, 'coco.db') }),
    agents: broker,
    commands,
    tuning,
  });
  await engine.start();
  cleanups.push(() => engine.stop());
  return engine;
}

/** Registers a cleanup to run after the test. */
export function onCleanup(fn: () => Promise<unknown>): void {
  cleanups.push(fn);
}

/** Resolves when `predicate` holds (checked every 5 ms), or fails after `ms`. */
export async function until(
  predicate: () => boolean | Promise<boolean>,
  ms = 5_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Start requests for `n` tasks named `<prefix><i>`. */
export function tasks(
  n: number,
  verb = 'hold',
  prefix = 't',
): { taskId: string; verb: string; args: unknown }[] {
  return Array.from({ length: n }, (_, i) => ({ taskId: `${prefix}${i}`, verb, args: { i } }));
}
