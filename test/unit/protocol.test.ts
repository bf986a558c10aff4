import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  changesRequest,
  changesResponse,
  healthResponse,
  okResponse,
  pathVersion,
  PROTOCOL_VERSION,
  startRequest,
  statusResponse,
} from '../../src/protocol/agent-v2.js';
import { protocolJsonSchema } from '../../src/protocol/json-schema.js';
import { NonceMemory } from '../../src/protocol/replay.js';
import {
  bodySha256,
  canonicalRequest,
  EMPTY_BODY_SHA256,
  HEADERS,
  MAX_CLOCK_SKEW_MS,
  newNonce,
  NONCE_PATTERN,
  signedHeaders,
  verifyRequest,
  type ReceivedHeaders,
} from '../../src/protocol/signature.js';

const NOW = 1_800_000_000_000;
const BODY = '{"taskIds":["a"]}';
const SECRET = 's3cret-s3cret-s3cret';

/** The headers a signed request arrives with, by their keys in `HEADERS`. */
function received(headers: Record<string, string>): ReceivedHeaders {
  return Object.fromEntries(
    (Object.keys(HEADERS) as (keyof typeof HEADERS)[]).map((k) => [k, headers[HEADERS[k]]]),
  );
}

function signed(overrides: Partial<Parameters<typeof signedHeaders>[1]> = {}) {
  return received(
    signedHeaders(SECRET, {
      method: 'POST',
      path: '/v2/tasks/stop',
      agentId: 'agent-1',
      caller: 'node-1',
      body: BODY,
      timestamp: NOW,
      nonce: 'nonce-0123456789abcdef',
      ...overrides,
    }),
  );
}

function reason(
  headers: ReceivedHeaders,
  o: { path?: string; agentId?: string; now?: number } = {},
) {
  const checked = verifyRequest(
    SECRET,
    o.agentId ?? 'agent-1',
    'POST',
    o.path ?? '/v2/tasks/stop',
    headers,
    o.now ?? NOW,
  );
  return checked.ok ? null : checked.reason;
}

describe('agent protocol v2', () => {
  it('the committed JSON Schema is generated from the zod schemas (run `npm run protocol:schema`)', () => {
    const committed: unknown = JSON.parse(
      readFileSync(new URL('../../docs/agent-protocol.schema.json', import.meta.url), 'utf8'),
    );
    expect(committed).toEqual(protocolJsonSchema());
  });

  it('the canonical text: scheme, method, path, agent, caller, timestamp, nonce, body hash', () => {
    const fields = {
      method: 'post',
      path: '/v2/tasks/stop',
      agentId: 'agent-1',
      caller: 'node-1',
      timestamp: NOW,
      nonce: 'nonce-0123456789abcdef',
      bodySha256: bodySha256(BODY),
    };
    const lines = canonicalRequest(fields).split('\n');
    expect(lines).toEqual([
      'coco-agent-protocol-2',
      'POST',
      '/v2/tasks/stop',
      'agent-1',
      'node-1',
      String(NOW),
      'nonce-0123456789abcdef',
      bodySha256(BODY),
    ]);
    const documented = (protocolJsonSchema()['x-coco'] as { signature: { canonical: string[] } })
      .signature.canonical;
    expect(documented).toHaveLength(lines.length);
    expect(documented[0]).toBe(lines[0]);
    expect(EMPTY_BODY_SHA256).toBe(bodySha256(''));
    expect(bodySha256(Buffer.from(BODY))).toBe(bodySha256(BODY));
  });

  it('a signed request verifies; a change to any signed part does not', () => {
    const good = signed();
    expect(reason(good, { now: NOW + 1_000 })).toBeNull();
    // Each header swapped for the one of a request differing in one part.
    const other = (part: keyof ReceivedHeaders, overrides: Parameters<typeof signed>[0]) => ({
      ...good,
      [part]: signed(overrides)[part],
    });
    expect(reason(other('contentSha256', { body: '{"taskIds":["b"]}' }))).toBe('bad signature');
    expect(reason(other('caller', { caller: 'node-2' }))).toBe('bad signature');
    expect(reason(other('nonce', { nonce: 'another-nonce-0123456' }))).toBe('bad signature');
    expect(reason(other('timestamp', { timestamp: NOW + 1 }))).toBe('bad signature');
    expect(reason(good, { path: '/v2/tasks/clear' })).toBe('bad signature');
    expect(reason(received(signedHeaders('other-secret-0123456', { ...base() })))).toBe(
      'bad signature',
    );
    expect(verifyRequest(SECRET, 'agent-1', 'GET', '/v2/tasks/stop', good, NOW)).toMatchObject({
      ok: false,
      reason: 'bad signature',
    });
  });

  it('several secrets (a rotation): a request signed with any of them verifies, with none it does not', () => {
    const good = signed();
    const check = (secrets: readonly string[]) =>
      verifyRequest(secrets, 'agent-1', 'POST', '/v2/tasks/stop', good, NOW).ok;
    expect(check(['new-secret-0123456789', SECRET])).toBe(true);
    expect(check([SECRET, 'new-secret-0123456789'])).toBe(true);
    expect(check(['new-secret-0123456789'])).toBe(false);
    expect(check([])).toBe(false);
  });

  it('binds the request to its agent: the claimed agent is signed, and another agent refuses it', () => {
    const forOne = signed({ agentId: 'agent-1' });
    expect(reason(forOne, { agentId: 'agent-2' })).toBe(
      'the request is for agent "agent-1"; this is agent "agent-2"',
    );
    // The agent header changed in transit: the signature no longer matches.
    expect(reason({ ...forOne, agent: 'agent-2' }, { agentId: 'agent-2' })).toBe('bad signature');
  });

  it('refuses stale, future, missing and malformed headers, naming what is wrong', () => {
    expect(reason(signed(), { now: NOW + MAX_CLOCK_SKEW_MS + 1 })).toMatch(
      /away from the agent's clock/,
    );
    expect(reason(signed(), { now: NOW - MAX_CLOCK_SKEW_MS - 1 })).toMatch(
      /away from the agent's clock/,
    );
    expect(reason({ ...signed(), nonce: undefined, signature: undefined })).toBe(
      `missing ${HEADERS.nonce}, ${HEADERS.signature}`,
    );
    expect(reason({ ...signed(), timestamp: '1e12' })).toMatch(/not a number/);
    expect(reason(signed({ nonce: 'short' }))).toMatch(/x-coco-nonce is not 16 to 128/);
    expect(reason({ ...signed(), contentSha256: 'ABC' })).toMatch(/not a lower-case hex SHA-256/);
    expect(reason({ ...signed(), signature: 'v1=00' })).toMatch(/not a protocol 2 signature/);
  });

  it('fresh nonces are 128 random bits in base64url', () => {
    const a = newNonce();
    expect(a).toMatch(NONCE_PATTERN);
    expect(a).toHaveLength(22);
    expect(newNonce()).not.toBe(a);
  });

  it('paths carry their version; this agent protocol is 2', () => {
    expect(PROTOCOL_VERSION).toBe(2);
    expect(pathVersion('/v1/tasks/start')).toBe(1);
    expect(pathVersion('/v2/health')).toBe(2);
    expect(pathVersion('/v12?x')).toBe(12);
    expect(pathVersion('/version')).toBeNull();
    expect(pathVersion('/tasks/v1/start')).toBeNull();
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

  it("refuses an agent's boot id with U+0000 or past 200 characters (stored with its row), in every answer", () => {
    const answers = [
      (bootId: string) => healthResponse.safeParse({ ...HEALTH, bootId }),
      (bootId: string) => okResponse.safeParse({ bootId, ok: true }),
      (bootId: string) => statusResponse.safeParse({ bootId, tasks: [] }),
      (bootId: string) => changesResponse.safeParse({ bootId, cursor: 0, tasks: [] }),
    ];
    for (const parse of answers) {
      expect(parse('b6a9c1e2-boot').success).toBe(true);
      expect(parse('boot\u0000').success).toBe(false);
      expect(parse('b'.repeat(201)).success).toBe(false);
    }
  });
});

/** A health answer but for its boot id. */
const HEALTH = {
  protocol: PROTOCOL_VERSION,
  agentId: 'agent-1',
  version: '1',
  verbs: [],
  tasks: 0,
  time: NOW,
};

function base() {
  return {
    method: 'POST',
    path: '/v2/tasks/stop',
    agentId: 'agent-1',
    caller: 'node-1',
    body: BODY,
    timestamp: NOW,
    nonce: 'nonce-0123456789abcdef',
  };
}

describe('the replay memory', () => {
  const WINDOW = 10_000;

  it('accepts a nonce once while its request is acceptable, and forgets it after', () => {
    const memory = new NonceMemory({ windowMs: WINDOW });
    expect(memory.remember('n1', NOW, NOW)).toBe('fresh');
    expect(memory.remember('n1', NOW, NOW + 1)).toBe('replayed');
    // Up to the end of the window (timestamp + window) the request could pass: still refused.
    expect(memory.remember('n1', NOW, NOW + WINDOW)).toBe('replayed');
    expect(memory.size).toBe(1);
    // Past it the timestamp alone refuses the request, so the nonce may go (by the second).
    expect(memory.remember('n2', NOW + 2 * WINDOW, NOW + WINDOW + 1_000)).toBe('fresh');
    expect(memory.size).toBe(1);
  });

  it('keeps a nonce signed ahead of the agent clock until that timestamp is out of the window', () => {
    const memory = new NonceMemory({ windowMs: WINDOW });
    expect(memory.remember('ahead', NOW + WINDOW, NOW)).toBe('fresh');
    expect(memory.remember('ahead', NOW + WINDOW, NOW + 2 * WINDOW)).toBe('replayed');
    expect(memory.remember('x', NOW, NOW + 2 * WINDOW + 1_000)).toBe('stale');
    expect(memory.size).toBe(0);
  });

  it('at its bound refuses new nonces (never forgets one early) until old ones pass', () => {
    const memory = new NonceMemory({ windowMs: WINDOW, capacity: 3 });
    for (const n of ['a', 'b', 'c']) expect(memory.remember(n, NOW, NOW)).toBe('fresh');
    expect(memory.remember('d', NOW, NOW + 1)).toBe('full');
    expect(memory.remember('a', NOW, NOW + 1)).toBe('replayed');
    expect(memory.size).toBe(3);
    expect(memory.remember('d', NOW + WINDOW, NOW + WINDOW + 1_000)).toBe('fresh');
    expect(memory.size).toBe(1);
  });
});
