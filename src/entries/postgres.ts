/**
 * `coco-engine/postgres`: the PostgreSQL store, for many coordinator nodes on one database
 * (node leases with fencing, claims of a dead node's trees, one poller per agent), and the job
 * view's store beside it. The `pg` driver loads when a store first builds its pool.
 *
 * @example
 * ```ts
 * import { createEngine } from 'coco-engine';
 * import { postgresStore } from 'coco-engine/postgres';
 *
 * const store = postgresStore({ url: 'postgres://coco@db/coco', schema: 'coco' });
 * const engine = createEngine({ store, agents, commands });
 * ```
 * @module
 */
export {
  postgresStore,
  PostgresStore,
  DEFAULT_LEASE_MS,
  DEFAULT_LIST_LIMIT,
  DEFAULT_POOL_SIZE,
  DEFAULT_STATEMENT_TIMEOUT_MS,
  MAX_LIST_LIMIT,
  type PostgresStoreOptions,
} from '../store/postgres/pg-store.js';
export {
  postgresJobStore,
  PostgresJobStore,
  type PostgresJobStoreOptions,
} from '../jobs/postgres/job-store.js';
