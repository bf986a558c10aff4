/**
 * The agent protocol as one JSON Schema document (draft 2020-12), generated from its zod
 * schemas: every message under `$defs`, with the paths and headers in `x-coco`.
 *
 * @module
 */
import { z } from 'zod';
import {
  HEADERS,
  MAX_BATCH,
  MAX_CHANGES_WAIT_MS,
  MAX_CLOCK_SKEW_MS,
  PATHS,
  PROTOCOL_VERSION,
  SCHEMAS,
} from './agent-v1.js';

/** The document. */
export function protocolJsonSchema(): Record<string, unknown> {
  const defs: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(SCHEMAS)) {
    const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, {
      io: 'input',
      unrepresentable: 'any',
    }) as Record<string, unknown>;
    defs[name] = rest;
  }
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://coco.dev/schemas/agent-protocol/v1.json',
    title: `coco agent protocol, version ${PROTOCOL_VERSION}`,
    'x-coco': {
      version: PROTOCOL_VERSION,
      calls: {
        health: { method: 'GET', path: PATHS.health, response: 'healthResponse' },
        start: {
          method: 'POST',
          path: PATHS.start,
          request: 'startRequest',
          response: 'startResponse',
        },
        status: {
          method: 'POST',
          path: PATHS.status,
          request: 'statusRequest',
          response: 'statusResponse',
        },
        stop: { method: 'POST', path: PATHS.stop, request: 'idsRequest', response: 'okResponse' },
        clear: { method: 'POST', path: PATHS.clear, request: 'idsRequest', response: 'okResponse' },
        list: {
          method: 'POST',
          path: PATHS.list,
          request: 'listRequest',
          response: 'listResponse',
        },
        changes: {
          method: 'POST',
          path: PATHS.changes,
          request: 'changesRequest',
          response: 'changesResponse',
        },
      },
      errors: { body: 'errorResponse', statuses: [400, 401, 404, 413, 500] },
      headers: HEADERS,
      limits: {
        maxBatch: MAX_BATCH,
        maxChangesWaitMs: MAX_CHANGES_WAIT_MS,
        maxClockSkewMs: MAX_CLOCK_SKEW_MS,
      },
    },
    $defs: defs,
  };
}
