/**
 * In-memory engine objects for unit tests of engine parts (committer, dispatcher): a root
 * command of a given type, built without an engine.
 */
import type { CommandType } from '../../src/core/command-type.js';
import { LiveCommand } from '../../src/engine/live.js';

/** A pending root command (id 1 unless given), concurrent children, wait-all. */
export function liveRoot(type: CommandType, persisted: boolean, id = 1): LiveCommand {
  return new LiveCommand({
    id,
    type,
    paramsVersion: 1,
    rawParams: {},
    params: {},
    parentId: null,
    rootId: id,
    seq: null,
    originStage: null,
    childMode: 'concurrent',
    failurePolicy: 'wait-all',
    idempotencyKey: null,
    createdAt: 0,
    persisted,
  });
}
