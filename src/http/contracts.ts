/**
 * The engine API's request contracts (zod). Responses are the store's and the monitor's records
 * (see src/store/port.ts and src/jobs/port.ts).
 *
 * @module
 */
import { z } from 'zod';
import { COMMAND_STATUSES } from '../core/states.js';
import { JOB_STATUSES } from '../jobs/port.js';

/** `POST /v1/commands`. */
export const submitBody = z
  .object({
    type: z.string().min(1),
    params: z.unknown(),
    idempotencyKey: z.string().min(1).max(200).optional(),
    /** Admission priority (higher first among queued tasks; engine/admission.ts). */
    priority: z.number().int().min(-1_000_000).max(1_000_000).optional(),
  })
  .strict();

/** A numeric id in the path. */
export const idParam = z.object({ id: z.coerce.number().int().positive() });

const csv = <T extends readonly [string, ...string[]]>(values: T) =>
  z
    .string()
    .transform((s) => s.split(',').filter((x) => x !== ''))
    .pipe(z.array(z.enum(values)).min(1));

/** `GET /v1/commands` query. */
export const commandListQuery = z.object({
  status: csv(COMMAND_STATUSES).optional(),
  type: z.string().min(1).optional(),
  rootsOnly: z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .optional(),
  beforeId: z.coerce.number().int().positive().optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(50),
});

/** `GET /v1/jobs` query. */
export const jobListQuery = z.object({
  status: csv(JOB_STATUSES).optional(),
  type: z.string().min(1).optional(),
  beforeId: z.coerce.number().int().positive().optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(50),
});

/**
 * `POST /v1/admin/prune` (retention): trees that ended at least `olderThanMs` ago go, with their
 * jobs; `dryRun` counts them instead.
 */
export const pruneBody = z
  .object({
    olderThanMs: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    dryRun: z.boolean().default(false),
  })
  .strict();
