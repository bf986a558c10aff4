/**
 * `coco-engine/sqlite`: the embedded store (one file, one writing node, WAL), and the job view's
 * store in the same file. The `better-sqlite3` driver loads when a store first opens its file.
 *
 * @example
 * ```ts
 * import { sqliteStore } from 'coco-engine/sqlite';
 * const engine = createEngine({ store: sqliteStore({ path: 'coco.db' }), agents, commands });
 * ```
 * @module
 */
export * from '../store/sqlite/sqlite-store.js';
export {
  sqliteJobStore,
  SqliteJobStore,
  type SqliteJobStoreOptions,
} from '../jobs/sqlite/job-store.js';
