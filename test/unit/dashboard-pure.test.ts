/**
 * The dashboard's pure parts, outside a browser: the event-stream parser (chunks cut anywhere,
 * line endings, comments, multi-line data), the step tree's rows and declared counts, and the
 * order of a tree's compensation.
 */
import { describe, expect, it } from 'vitest';
import { EventParser } from '../../src/dashboard/event-parser.js';
import { duration, healthBanner } from '../../src/dashboard/format.js';
import {
  commandDetails,
  type CommandDetails,
  type JobTree,
  type Step,
} from '../../src/dashboard/schemas.js';
import { undoOrder } from '../../src/dashboard/views/compensation.js';
import { met, treeRows } from '../../src/dashboard/views/tree.js';

describe('the event-stream parser', () => {
  const stream =
    ': keep-alive\r\nevent: job\r\ndata: {"a":1}\r\n\r\nevent: job\ndata: line one\ndata: line two\n\n' +
    'data: no event name\r\r: trailing comment\n';

  it('gives the same events whatever the chunks', () => {
    const expected = [
      { event: 'job', data: '{"a":1}' },
      { event: 'job', data: 'line one\nline two' },
      { event: 'message', data: 'no event name' },
    ];
    for (const size of [1, 2, 3, 7, 16, stream.length]) {
      const parser = new EventParser();
      const got = [];
      for (let i = 0; i < stream.length; i += size)
        got.push(...parser.push(stream.slice(i, i + size)));
      expect(got, `chunks of ${size}`).toEqual(expected);
    }
  });

  it('keeps an event whose blank line has not come yet', () => {
    const parser = new EventParser();
    expect(parser.push('event: job\ndata: {}\n')).toEqual([]);
    expect(parser.push('\n')).toEqual([{ event: 'job', data: '{}' }]);
  });
});

const step = (over: Partial<Step> & Pick<Step, 'key' | 'kind' | 'commandId'>): Step => ({
  name: over.kind === 'task' ? 'volume.copy@host-1' : 'x',
  taskOrdinal: null,
  status: 'running',
  compensation: 'none',
  progress: 0,
  expectedTasks: 0,
  expectedChildren: 0,
  undo: false,
  error: null,
  startedAt: 0,
  endedAt: null,
  ...over,
});

describe('the step tree', () => {
  const tree: JobTree = {
    job: { id: 1, type: 'p', status: 'running', progress: 10, startedAt: 0, endedAt: null },
    root: {
      step: step({ key: 'c1', kind: 'command', commandId: 1, expectedChildren: 3 }),
      tasks: [],
      children: [
        {
          step: step({
            key: 'c2',
            kind: 'command',
            commandId: 2,
            expectedTasks: 1,
            status: 'succeeded',
          }),
          tasks: [
            step({ key: 't2.0', kind: 'task', commandId: 2, taskOrdinal: 0, status: 'succeeded' }),
            step({ key: 't2.1', kind: 'task', commandId: 2, taskOrdinal: 1, undo: true }),
          ],
          children: [],
        },
        {
          step: step({ key: 'c3', kind: 'command', commandId: 3, expectedTasks: 2 }),
          tasks: [step({ key: 't3.0', kind: 'task', commandId: 3, taskOrdinal: 0 })],
          children: [],
        },
      ],
    },
  };

  it('lists commands with their tasks under them, depth first, and splits verb and agent', () => {
    const rows = treeRows(tree);
    expect(rows.map((r) => `${r.depth}:${r.step.key}`)).toEqual([
      '0:c1',
      '1:c2',
      '2:t2.0',
      '2:t2.1',
      '1:c3',
      '2:t3.0',
    ]);
    expect(rows[2]).toMatchObject({ verb: 'volume.copy', agent: 'host-1' });
  });

  it('says whether declared counts are met: created and ended, undo tasks aside', () => {
    const [root, c2, , , c3] = treeRows(tree);
    expect(root!.waits!.children).toEqual({ declared: 3, created: 2, ended: 1 });
    expect(met(root!.waits!.children)).toBe(false);
    expect(c2!.waits!.tasks).toEqual({ declared: 1, created: 1, ended: 1 });
    expect(met(c2!.waits!.tasks)).toBe(true);
    expect(c3!.waits!.tasks).toEqual({ declared: 2, created: 1, ended: 0 });
    expect(met(c3!.waits!.tasks)).toBe(false);
  });
});

const details = (
  id: number,
  undo: { ordinal: number; seq: number; name: string; status: string }[],
  children: { id: number; seq?: number }[] = [],
): CommandDetails => ({
  id,
  type: `t${id}`,
  status: 'failed',
  parentId: null,
  rootId: 1,
  createdAt: 0,
  endedAt: 1,
  error: null,
  tasks: [{ ordinal: 0, origin: -1, agentId: 'h', verb: 'volume.delete', status: 'succeeded' }],
  undo: undo.map((u) => ({ ...u, error: null })),
  children: children.map((c) => ({ id: c.id, seq: c.seq ?? null })),
});

describe('the compensation order', () => {
  it('undoes a journal in reverse, each child at its place, numbering what ran', () => {
    // Root 1: undo `unlock` (seq 0), child 2 (seq 1), child 3 (seq 2), undo `release` (seq 3).
    const all = new Map([
      [
        1,
        details(
          1,
          [
            { ordinal: 0, seq: 0, name: 'unlock', status: 'done' },
            { ordinal: 1, seq: 3, name: 'release', status: 'done' },
          ],
          [
            { id: 2, seq: 1 },
            { id: 3, seq: 2 },
          ],
        ),
      ],
      [2, details(2, [{ ordinal: 0, seq: 0, name: 'removeSnapshot', status: 'done' }])],
      [3, details(3, [{ ordinal: 0, seq: 0, name: 'removeTarget', status: 'failed' }])],
    ]);
    const order = undoOrder(1, all, () => true);
    expect(order.map((e) => `${e.order}:${e.name}:${e.status}`)).toEqual([
      '1:release:done',
      '2:removeTarget:failed',
      '3:removeSnapshot:done',
      '4:unlock:done',
    ]);
    // The undo step's own tasks (origin -1 - its ordinal) go with it.
    expect(order[3]!.tasks.map((t) => t.verb)).toEqual(['volume.delete']);
  });

  it('places children known by id only after the undo steps, latest first', () => {
    // The API lists children as ids: the migration's shape (undo steps of its first stage,
    // children after) comes out in the order it runs.
    const all = new Map([
      [
        1,
        details(
          1,
          [
            { ordinal: 0, seq: 0, name: 'unlock', status: 'done' },
            { ordinal: 1, seq: 1, name: 'releaseTarget', status: 'done' },
          ],
          [{ id: 2 }, { id: 3 }],
        ),
      ],
      [2, details(2, [{ ordinal: 0, seq: 0, name: 'removeSnapshot', status: 'done' }])],
      [3, details(3, [{ ordinal: 0, seq: 0, name: 'removeTarget', status: 'done' }])],
    ]);
    expect(undoOrder(1, all, () => true).map((e) => e.name)).toEqual([
      'removeTarget',
      'removeSnapshot',
      'releaseTarget',
      'unlock',
    ]);
  });

  it("takes each child's seq from the API's childPositions: an undo step recorded after a child undoes first", () => {
    // As GET /v1/commands/:id answers: children as ids, their journal places beside them.
    const root = commandDetails.parse({
      ...details(1, [
        { ordinal: 0, seq: 0, name: 'unlock', status: 'done' },
        { ordinal: 1, seq: 3, name: 'release', status: 'done' },
      ]),
      children: [2, 3],
      childPositions: [
        { id: 2, seq: 1, stage: 0 },
        { id: 3, seq: 2, stage: 1 },
      ],
    });
    expect(root.children).toEqual([
      { id: 2, seq: 1 },
      { id: 3, seq: 2 },
    ]);
    const all = new Map([
      [1, root],
      [2, details(2, [{ ordinal: 0, seq: 0, name: 'removeSnapshot', status: 'done' }])],
      [3, details(3, [{ ordinal: 0, seq: 0, name: 'removeTarget', status: 'done' }])],
    ]);
    expect(undoOrder(1, all, () => true).map((e) => e.name)).toEqual([
      'release',
      'removeTarget',
      'removeSnapshot',
      'unlock',
    ]);
    // Without the positions (an older node), children go after the undo steps.
    const idsOnly = commandDetails.parse({ ...root, childPositions: undefined, children: [2, 3] });
    expect(idsOnly.children.map((c) => c.seq)).toEqual([null, null]);
  });

  it('leaves out children that take no part, and does not number steps not run', () => {
    const all = new Map([
      [
        1,
        details(
          1,
          [{ ordinal: 0, seq: 0, name: 'unlock', status: 'recorded' }],
          [{ id: 2, seq: 1 }],
        ),
      ],
      [2, details(2, [{ ordinal: 0, seq: 0, name: 'removeSnapshot', status: 'done' }])],
    ]);
    expect(undoOrder(1, all, (id) => id !== 2).map((e) => `${e.order}:${e.name}`)).toEqual([
      'null:unlock',
    ]);
  });
});

describe('durations', () => {
  it('reads at a glance', () => {
    expect([850, 12_400, 185_000, 7_620_000, 3 * 86_400_000].map(duration)).toEqual([
      '850 ms',
      '12.4 s',
      '3 m 05 s',
      '2 h 07 m',
      '3 d 0 h',
    ]);
  });
});

describe("the node's health banner", () => {
  it('shows nothing while the node is ready or not yet read, and why otherwise', () => {
    expect(healthBanner(null)).toBeNull();
    expect(healthBanner({ kind: 'ready' })).toBeNull();
    expect(
      healthBanner({
        kind: 'not-ready',
        nodeId: 'node-1',
        reason: 'the store has taken no write for 6.2 s',
        detail: 'STORE_FAILED: disk is full',
      }),
    ).toBe(
      'Node node-1 is not ready: the store has taken no write for 6.2 s (STORE_FAILED: disk is full). Submits and cancels may be refused until it is.',
    );
    expect(
      healthBanner({
        kind: 'not-ready',
        nodeId: 'n',
        reason: 'the engine is starting',
        detail: null,
      }),
    ).toBe(
      'Node n is not ready: the engine is starting. Submits and cancels may be refused until it is.',
    );
    expect(healthBanner({ kind: 'unreachable', error: 'no answer within 3 s' })).toBe(
      'The node does not answer (no answer within 3 s): what is shown may be out of date.',
    );
  });
});
