/**
 * What the API's route groups share: the node's current engine and monitor (a node that lost
 * its lease rejoins with fresh ones), the command types, the open event streams, the routes.
 *
 * @module
 */
import type { AdmissionLimits } from '../engine/admission.js';
import type { CommandType } from '../core/command-type.js';
import type { Engine } from '../engine/engine.js';
import type { JobMonitor } from '../jobs/monitor.js';
import type { DetailCache } from './detail-cache.js';
import type { Routes } from './routes.js';
import type { Streams } from './sse.js';

/** The API's shared parts, as the route groups see them. */
export interface ApiContext {
  readonly routes: Routes;
  readonly engine: () => Engine;
  readonly monitor: () => JobMonitor | null;
  readonly rejoining: () => boolean;
  readonly commands: readonly CommandType[];
  /** Submittable types by name. */
  readonly types: ReadonlyMap<string, CommandType>;
  readonly streams: Streams;
  readonly version: string;
  /** Replaces the admission limits (engine/admission.ts) of this node's engines. */
  readonly setLimits: (limits: AdmissionLimits) => void;
  /** Ended commands' rendered details (`GET /v1/commands/:id`). */
  readonly details: DetailCache;
}
