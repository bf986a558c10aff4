/**
 * `coco demo` — the main job: an engine on the embedded SQLite store and a reference agent in its
 * own process (real HTTP), a disk image created and filled on one storage domain, then
 * live-migrated to another (snapshot → create target → copy → verify → switch → remove source →
 * remove snapshot), with the job's steps and progress shown as it goes, and the data checked.
 *
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { pino } from 'pino';
import { diskCommands } from '../../../examples/disk/index.js';
import { CocoError, ErrorCode } from '../../core/errors.js';
import { parseConfig } from '../../config/config.js';
import { startNode, type CocoNode } from '../../server/node.js';
import { EXIT, usage } from '../errors.js';
import { bar, renderTree } from '../render.js';

/** What the demo reports (`--json`). */
export interface DemoResult {
  readonly ok: boolean;
  readonly jobId: number;
  readonly status: string;
  readonly seconds: number;
  readonly sizeBytes: number;
  readonly sha256: string;
  readonly target: { readonly path: string; readonly sha256: string };
  readonly source: { readonly path: string; readonly removed: boolean };
  readonly database: string;
  readonly storage: string;
}

const AGENT = 'host-1';
const DISK = 'vm1-disk';
const FROM = 'sd-fast';
const TO = 'sd-slow';

/** Starts `coco agent` in its own process and resolves with its URL (from its first stdout line). */
async function spawnAgent(
  dir: string,
  secret: string,
): Promise<{ child: ChildProcess; url: string }> {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const bin = new URL(`../bin${ext}`, import.meta.url).pathname;
  const child = spawn(
    process.execPath,
    [
      ...process.execArgv,
      bin,
      'agent',
      '--id',
      AGENT,
      '--port',
      '0',
      '--data-dir',
      join(dir, 'agent'),
      '--storage-root',
      join(dir, 'storage'),
    ],
    {
      env: { ...process.env, COCO_AGENT_SECRET: secret, COCO_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const line = await new Promise<string>((resolvePromise, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new CocoError(ErrorCode.AgentUnavailable, 'the demo agent did not start within 20 s'),
        ),
      20_000,
    );
    child.once('exit', (code) =>
      reject(
        new CocoError(
          ErrorCode.AgentUnavailable,
          `the demo agent exited (code ${code}) before it listened`,
        ),
      ),
    );
    createInterface({ input: child.stdout }).once('line', (l) => {
      clearTimeout(timer);
      resolvePromise(l);
    });
  });
  const { url } = JSON.parse(line) as { url: string };
  return { child, url };
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function typeNamed(name: string): (typeof diskCommands)[number] {
  const type = diskCommands.find((t) => t.name === name);
  if (!type)
    throw new CocoError(
      ErrorCode.InvalidDefinition,
      `the disk example pack has no command type ${name}`,
    );
  return type;
}

/**
 * The demo's stage lines in stage order: a stage's lines (keyed by its command id, which grows
 * with the stages) are printed once every earlier stage printed its end; the rest at `flush`.
 */
class StageLines {
  readonly #say: (line: string) => void;
  readonly #pending = new Map<number, { lines: string[]; ended: boolean }>();

  constructor(say: (line: string) => void) {
    this.#say = say;
  }

  add(stage: number, line: string, ended: boolean): void {
    const entry = this.#pending.get(stage) ?? { lines: [], ended: false };
    entry.lines.push(line);
    entry.ended ||= ended;
    this.#pending.set(stage, entry);
    this.#drain(false);
  }

  /** Prints whatever is left, stage by stage. */
  flush(): void {
    this.#drain(true);
  }

  #drain(all: boolean): void {
    for (const stage of [...this.#pending.keys()].sort((a, b) => a - b)) {
      const entry = this.#pending.get(stage)!;
      for (const line of entry.lines) this.#say(line);
      entry.lines = [];
      if (!entry.ended && !all) return;
      this.#pending.delete(stage);
    }
  }
}

/**
 * A configuration to browse the demo's database with `coco serve --config <file>`: its store,
 * the disk command pack, and its agent (stopped by then; its secret in a chmod 600 file).
 */
function writeBrowseConfig(dir: string, agentUrl: string, secret: string): string {
  const secretFile = join(dir, 'agent.secret');
  writeFileSync(secretFile, `${secret}\n`, { mode: 0o600 });
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const pack = fileURLToPath(new URL(`../../../examples/disk/index${ext}`, import.meta.url));
  const file = join(dir, 'coco.json');
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        store: `sqlite:${join(dir, 'coco.db')}`,
        agents: [{ id: AGENT, url: agentUrl, secretFile }],
        commands: [pack],
      },
      null,
      2,
    )}\n`,
  );
  return file;
}

/** Runs the demo; prints progress unless `quiet`. */
export async function runDemo(o: {
  sizeMib: number;
  dir: string;
  quiet: boolean;
}): Promise<DemoResult> {
  const dir = resolve(o.dir);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const say = (line: string): void => {
    if (!o.quiet) console.log(line);
  };
  const secret = randomBytes(24).toString('hex');
  const began = performance.now();
  say(`coco demo: live disk migration of a ${o.sizeMib} MiB image, ${FROM} -> ${TO}`);
  const agent = await spawnAgent(dir, secret);
  say(`  agent ${AGENT} (its own process) listening on ${agent.url}`);
  let node: CocoNode | null = null;
  try {
    const config = parseConfig(
      {
        store: `sqlite:${join(dir, 'coco.db')}`,
        api: { port: 0 },
        agents: [{ id: AGENT, url: agent.url, secret }],
      },
      dir,
    );
    node = await startNode({
      config,
      commands: diskCommands,
      logger: pino({ level: process.env.COCO_LOG_LEVEL ?? 'warn' }, pino.destination(2)),
    });
    say(`  engine on ${config.store}, API on ${node.url}`);
    const { engine, monitor } = node;
    const sizeBytes = o.sizeMib * 1024 * 1024;

    say(`  creating ${DISK} on ${FROM} and filling it with data...`);
    const created = await engine.submit(typeNamed('disk.create'), {
      disk: DISK,
      domain: FROM,
      sizeBytes,
      agent: AGENT,
      seed: 42,
    });
    const createdEnd = await engine.waitFor(created.id);
    if (createdEnd.status !== 'succeeded')
      throw new CocoError(
        ErrorCode.CommandFailed,
        `creating the disk ${createdEnd.status}: ${createdEnd.error?.message ?? ''}`,
      );
    const sourcePath = join(dir, 'storage', FROM, `${DISK}.img`);
    const sha256 = await sha256Of(sourcePath);

    say(`  migrating ${DISK} (sha256 ${sha256.slice(0, 16)}...) to ${TO}:`);
    const migration = await engine.submit(typeNamed('disk.migrate'), {
      disk: DISK,
      toDomain: TO,
      agent: AGENT,
    });
    // One line per stage when it starts, every 25% of a long stage, and when it ends — stage
    // after stage: the lines of a stage wait until the stages before it printed their end.
    const shown = new Map<string, string>();
    const stages = new StageLines(say);
    const off = monitor?.on('step', (step) => {
      if (step.jobId !== migration.id || step.kind !== 'command' || step.parentKey === null) return;
      const ended =
        step.status === 'succeeded' || step.status === 'failed' || step.status === 'cancelled';
      const phase = ended ? step.status : `running ${Math.floor(step.progress / 25) * 25}`;
      if (shown.get(step.key) === phase) return;
      shown.set(step.key, phase);
      const label = step.name.replace(/^disk\.migrate\./, '');
      stages.add(
        Number(step.key.slice(1)),
        `    ${label.padEnd(16)} ${bar(step.progress)}  ${ended ? step.status : 'running'}${step.error ? ` — ${step.error.code}` : ''}`,
        ended,
      );
    });
    const end = await engine.waitFor(migration.id);
    // The monitor's last batch (the last stage's end) is heard before the listener goes.
    await monitor?.flush();
    off?.();
    stages.flush();
    const tree = monitor ? await monitor.getTree(migration.id) : null;
    if (tree) {
      say('');
      for (const line of renderTree(tree)) say(`  ${line}`);
    }
    const targetPath = join(dir, 'storage', TO, `${DISK}.img`);
    const targetSha = existsSync(targetPath) ? await sha256Of(targetPath) : '';
    const removed = !existsSync(sourcePath);
    const ok = end.status === 'succeeded' && targetSha === sha256 && removed;
    const seconds = (performance.now() - began) / 1000;
    say('');
    say(
      `  data ${targetSha === sha256 ? 'arrived intact (sha256 matches)' : 'DOES NOT MATCH'}; source ${removed ? 'removed' : 'STILL THERE'}`,
    );
    say(`  disk image: ${targetPath}`);
    const configFile = writeBrowseConfig(dir, agent.url, secret);
    say(`  database:   ${join(dir, 'coco.db')} (commands, tasks, jobs)`);
    say(
      `  browse it:  coco serve --config ${configFile}   then: coco status ${migration.id} --config ${configFile}   (the demo's agent has stopped)`,
    );
    say(`  ${ok ? 'done' : 'FAILED'} in ${seconds.toFixed(1)} s`);
    return {
      ok,
      jobId: migration.id,
      status: end.status,
      seconds,
      sizeBytes,
      sha256,
      target: { path: targetPath, sha256: targetSha },
      source: { path: sourcePath, removed },
      database: join(dir, 'coco.db'),
      storage: join(dir, 'storage'),
    };
  } finally {
    await node?.close();
    agent.child.kill('SIGTERM');
  }
}

/** Adds `demo` to the program. */
export function addDemoCommand(program: Command, setExit: (code: number) => void): void {
  program
    .command('demo')
    .description(
      'the main job: live-migrate a disk image between two storage domains through a local agent, showing progress',
    )
    .option('--size-mib <n>', 'size of the disk image in MiB', '256')
    .option(
      '--dir <dir>',
      'where the demo keeps its database, agent data and storage (wiped first)',
      '.coco/demo',
    )
    .option('--json', 'print the outcome as JSON (and no progress)')
    .action(async (o: { sizeMib: string; dir: string; json?: boolean }) => {
      const sizeMib = Number(o.sizeMib);
      if (!Number.isInteger(sizeMib) || sizeMib < 1 || sizeMib > 65536)
        throw usage(`--size-mib must be an integer from 1 to 65536, not "${o.sizeMib}"`);
      const result = await runDemo({ sizeMib, dir: o.dir, quiet: o.json === true });
      if (o.json) console.log(JSON.stringify(result, null, 2));
      setExit(result.ok ? EXIT.ok : EXIT.failed);
    });
}
