/**
 * What a rebuilt command keeps of its stored parameters (engine/recovery.ts): nothing when it was
 * loaded whole and needs no upgrade (nothing writes them again; at a restart every kept object is
 * copied by the scavenges), the upgraded parameters when they must be written back, and the row's
 * parameters as read when the command could not be loaded.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import type { CommandRecord } from '../../src/core/records.js';
import { CommandRegistry } from '../../src/core/registry.js';
import { rebuild } from '../../src/engine/recovery.js';
import { commandRecord } from '../support/records.js';

const current = defineCommand({
  name: 'unit.params',
  version: 2,
  schema: z.object({ n: z.number() }),
  upgrades: { 1: (p: { m: number }) => ({ n: p.m }) },
  execute() {},
});
const later = defineCommand({
  name: 'unit.later',
  schema: z.object({ n: z.number() }).refine(async () => true),
  execute() {},
});

function row(id: number, extra: Partial<CommandRecord> = {}): CommandRecord {
  return commandRecord(id, {
    type: 'unit.params',
    paramsVersion: 2,
    params: { n: id },
    status: 'waiting',
    ...extra,
  });
}

describe('a rebuilt command’s stored parameters', () => {
  it('none kept when loaded whole at the current version; upgraded ones kept (a batch writes them back); unloadable ones kept as read', async () => {
    const registry = new CommandRegistry([current, later]);
    const { commands, failures } = await rebuild(registry, 's', {
      commands: [
        row(1),
        row(2, { paramsVersion: 1, params: { m: 7 } }),
        row(3, { type: 'unit.gone', params: { x: 1 } }),
        row(4, { params: { n: 'not a number' } }),
        row(5, { type: 'unit.later', paramsVersion: 1 }),
      ],
      tasks: [],
      undo: [],
      endedChildren: [],
      corrupt: [],
    });
    const [whole, upgraded, unknown, invalid, validatedLater] = commands;
    expect(whole!.params).toEqual({ n: 1 });
    expect(whole!.rawParams).toBeNull();
    expect(upgraded!.params).toEqual({ n: 7 });
    expect(upgraded!.rawParams).toEqual({ n: 7 });
    expect(upgraded!.paramsDirty).toBe(true);
    expect(unknown!.held).toBe(true);
    expect(unknown!.rawParams).toEqual({ x: 1 });
    expect(invalid!.held).toBe(true);
    expect(invalid!.rawParams).toEqual({ n: 'not a number' });
    expect(validatedLater!.params).toEqual({ n: 5 });
    expect(validatedLater!.rawParams).toBeNull();
    expect(failures.map((f) => f.commandId)).toEqual([3, 4]);
  });
});
