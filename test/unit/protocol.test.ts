import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  MAX_CLOCK_SKEW_MS,
  changesRequest,
  signRequest,
  startRequest,
  verifyRequest,
} from '../../src/protocol/agent-v1.js';
import { protocolJsonSchema } from '../../src/protocol/json-schema.js';

describe('agent protocol v1', () => {
  it('the committed JSON Schema is generated from the zod schemas (run `npm run protocol:schema`)', () => {
    const committed: unknown = JSON.parse(
      readFileSync(new URL('../../docs/agent-protocol.schema.json', import.meta.url), 'utf8'),
    );
    expect(committed).toEqual(protocolJsonSchema());
  });

  it('a signed request verifies; a changed body, path, caller, secret or an old timestamp does not', () => {
    const now = 1_800_000_000_000;
    const body = '{"taskIds":["a"]}';
    const sig = signRequest('s3cret', 'POST', '/v1/tasks/stop', now, 'node-1', body);
    const headers = { timestamp: String(now), caller: 'node-1', signature: sig };
    expect(verifyRequest('s3cret', 'POST', '/v1/tasks/stop', headers, body, now + 1000)).toBeNull();
    expect(
      verifyRequest('s3cret', 'POST', '/v1/tasks/stop', headers, '{"taskIds":["b"]}', now),
    ).toBe('bad signature');
    expect(verifyRequest('s3cret', 'POST', '/v1/tasks/clear', headers, body, now)).toBe(
      'bad signature',
    );
    expect(
      verifyRequest(
        's3cret',
        'POST',
        '/v1/tasks/stop',
        { ...headers, caller: 'node-2' },
        body,
        now,
      ),
    ).toBe('bad signature');
    expect(verifyRequest('other', 'POST', '/v1/tasks/stop', headers, body, now)).toBe(
      'bad signature',
    );
    expect(
      verifyRequest('s3cret', 'POST', '/v1/tasks/stop', headers, body, now + MAX_CLOCK_SKEW_MS + 1),
    ).toMatch(/away from the agent's clock/);
    expect(
      verifyRequest('s3cret', 'POST', '/v1/tasks/stop', { timestamp: String(now) }, body, now),
    ).toMatch(/missing/);
  });

  it('validates bodies: task ids, batch sizes, long-poll waits', () => {
    expect(
      startRequest.safeParse({ tasks: [{ taskId: 'ok-1', verb: 'noop', args: null }] }).success,
    ).toBe(true);
    expect(startRequest.safeParse({ tasks: [{ taskId: '../etc', verb: 'noop' }] }).success).toBe(
      false,
    );
    expect(changesRequest.parse({ cursor: 0 }).waitMs).toBe(0);
    expect(changesRequest.safeParse({ cursor: 0, waitMs: 120_000 }).success).toBe(false);
  });
});
