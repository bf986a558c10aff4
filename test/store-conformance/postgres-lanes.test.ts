/**
 * The store conformance suite on PostgreSQL with a node applying through two connections
 * (`applyConnections: 2`, src/store/postgres/lanes.ts): everything the port promises holds as
 * with one. What only lanes have — routing, commit order across lanes, fencing by the apply lock,
 * lost connections on each lane — is in postgres-lanes-faults.test.ts.
 */
import { afterAll } from 'vitest';
import { describePg } from '../support/pg.js';
import { endAdmin, pgHarness } from './pg-harness.js';
import { describeStoreConformance } from './suite.js';

afterAll(endAdmin);

describePg('postgres, two apply connections', () => {
  describeStoreConformance('postgres (2 lanes)', () =>
    pgHarness({ applyConnections: 2, poolSize: 5 }),
  );
});
