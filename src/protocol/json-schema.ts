/**
 * The agent protocol as one JSON Schema document (draft 2020-12), generated from its zod
 * schemas: every message under `$defs`, with the paths and headers in `x-coco`.
 *
 * @module
 */
import { z } from 'zod';
import { MAX_BATCH, MAX_CHANGES_WAIT_MS, PATHS, PROTOCOL_VERSION, SCHEMAS } from './agent-v2.js';
import { MAX_REMEMBERED_NONCES } from './replay.js';
import { HEADERS, MAX_CLOCK_SKEW_MS, NONCE_PATTERN } from './signature.js';

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
    $id: `https://coco.dev/schemas/agent-protocol/v${PROTOCOL_VERSION}.json`,
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
      errors: { body: 'errorResponse', statuses: [400, 401, 404, 413, 500, 503] },
      headers: HEADERS,
      signature: {
        algorithm: 'HMAC-SHA256',
        header: `v${PROTOCOL_VERSION}=<lower-case hex>`,
        canonical: [
          `coco-agent-protocol-${PROTOCOL_VERSION}`,
          'METHOD',
          'PATH',
          'AGENT_ID',
          'CALLER',
          'TIMESTAMP',
          'NONCE',
          'BODY_SHA256',
        ],
        separator: '\n',
        noncePattern: NONCE_PATTERN.source,
      },
      limits: {
        maxBatch: MAX_BATCH,
        maxChangesWaitMs: MAX_CHANGES_WAIT_MS,
        maxClockSkewMs: MAX_CLOCK_SKEW_MS,
        maxRememberedNonces: MAX_REMEMBERED_NONCES,
      },
    },
    $defs: defs,
  };
}
