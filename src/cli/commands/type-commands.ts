/**
 * The subcommands on command types, through a running node: `types` (the types it registers,
 * their roots there and their pauses), `pause` and `resume`. A pause holds for every node of the
 * store and across restarts: the type's new roots are stored and wait (pending, queued) until it
 * is resumed; its roots already running go on, and children of every type run.
 *
 * @module
 */
import type { Command } from 'commander';
import { MAX_PAUSE_REASON } from '../../engine/pauses.js';
import { pauseAnswer, resumeAnswer, typeList } from '../../http/contracts.js';
import { usage } from '../errors.js';
import { describePause, renderTypes } from '../render.js';
import { atNode, client, print, withClientOptions, type ClientOptions } from './client-commands.js';

/** The API path of a type's action (a name is a path segment: encoded). */
const typePath = (name: string, action: 'pause' | 'resume'): string =>
  `/v1/types/${encodeURIComponent(name)}/${action}`;

/** Adds types, pause and resume to the program. */
export function addTypeCommands(program: Command): void {
  withClientOptions(
    program
      .command('types')
      .description(
        "list the node's command types: submittable or child only, root limit, roots running and queued, pauses",
      ),
  ).action(async (o: ClientOptions) => {
    const api = client(o);
    const res = await atNode(o, () => api.get('/v1/types'));
    const list = typeList.parse(res);
    print(o, res, () => renderTypes(list.types, list.otherPaused));
  });

  withClientOptions(
    program
      .command('pause')
      .description(
        'pause a command type on every node of the store: its new jobs are stored and wait until it is resumed (running ones go on)',
      )
      .argument('<type>', 'command type, e.g. disk.migrate')
      .option(
        '--reason <text>',
        `why, shown with the pause (at most ${MAX_PAUSE_REASON} characters)`,
      ),
  ).action(async (type: string, o: ClientOptions & { reason?: string }) => {
    if (o.reason !== undefined && o.reason.length > MAX_PAUSE_REASON)
      throw usage(
        `--reason must be at most ${MAX_PAUSE_REASON} characters (it has ${o.reason.length})`,
      );
    const api = client(o);
    const body = o.reason === undefined ? {} : { reason: o.reason };
    const res = await atNode(o, () => api.post(typePath(type, 'pause'), body));
    const t = pauseAnswer.parse(res);
    print(o, res, () => [
      `paused ${t.name} (${describePause(t.paused)}); its new jobs wait until: coco resume ${t.name}`,
      `its jobs already running go on; on this node: ${t.running ?? 'not counted'} running, ${t.queued} queued`,
    ]);
  });

  withClientOptions(
    program
      .command('resume')
      .description('resume a paused command type: its waiting jobs run as the limits allow')
      .argument('<type>', 'command type, e.g. disk.migrate'),
  ).action(async (type: string, o: ClientOptions) => {
    const api = client(o);
    const res = await atNode(o, () => api.post(typePath(type, 'resume'), {}));
    const r = resumeAnswer.parse(res);
    print(o, res, () => [
      r.resumed === null
        ? `${r.name} was not paused`
        : `resumed ${r.name} (paused ${describePause(r.resumed)}); its waiting jobs run as the limits allow`,
    ]);
  });
}
