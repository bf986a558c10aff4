/**
 * How a request of the agent protocol is signed and checked: HMAC-SHA256, with the secret the
 * engine shares with one agent, over a canonical text that binds the request to everything that
 * makes it what it is — the protocol version, the method, the path, the agent it is for, the
 * caller, the time, a nonce used once, and the SHA-256 of the body.
 *
 * Everything the agent needs to check a signature is in the headers (the body's hash included),
 * so an agent checks it before it reads a byte of the body, and reads the body only to compare
 * its hash with the signed one. A request is used once: the agent remembers the nonces it
 * accepted for as long as their timestamps are acceptable (`./replay.ts`).
 *
 * @module
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { PROTOCOL_VERSION } from './agent-v2.js';

/** Headers of a signed request. */
export const HEADERS = {
  /** Milliseconds since the epoch when the request was signed. */
  timestamp: 'x-coco-timestamp',
  /** The caller's id (the engine node). */
  caller: 'x-coco-caller',
  /** The id of the agent the request is for; an agent refuses a request for another id. */
  agent: 'x-coco-agent',
  /** A random value, new for every request; an agent accepts each nonce once. */
  nonce: 'x-coco-nonce',
  /** Lower-case hex SHA-256 of the exact body bytes (of the empty string for a GET). */
  contentSha256: 'x-coco-content-sha256',
  /** `v2=<hex HMAC-SHA256>` of the canonical request (see {@link canonicalRequest}). */
  signature: 'x-coco-signature',
} as const;

/**
 * How far a request's timestamp may be from the agent's clock, either way. Wide enough for
 * ordinary clock skew between hosts (NTP keeps them within milliseconds; a host without it
 * drifts seconds a day); it is also how long an agent must remember each nonce, so it bounds
 * the replay memory (`./replay.ts`).
 */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;

/** What a nonce looks like: 16 to 128 characters of base64url (128 random bits are 22). */
export const NONCE_PATTERN = /^[A-Za-z0-9_-]{16,128}$/;

/** Longest caller id an agent accepts (it is logged with every refusal). */
export const MAX_CALLER_LENGTH = 200;

/** The first line of every canonical request: the protocol and its version. */
const SCHEME = `coco-agent-protocol-${PROTOCOL_VERSION}`;

/** The signature header's prefix: the version of the signing scheme. */
const SIGNATURE_PREFIX = `v${PROTOCOL_VERSION}=`;

/** Hex SHA-256 of the empty body. */
export const EMPTY_BODY_SHA256 = createHash('sha256').digest('hex');

/** Everything a signature covers. */
export interface SignedFields {
  /** HTTP method, upper case when signed. */
  readonly method: string;
  /** The protocol path as the agent sees it (e.g. `/v2/tasks/start`). */
  readonly path: string;
  /** The agent the request is for. */
  readonly agentId: string;
  /** The caller (engine node) sending it. */
  readonly caller: string;
  /** Milliseconds since the epoch when it was signed. */
  readonly timestamp: number;
  /** Random, new for every request. */
  readonly nonce: string;
  /** Lower-case hex SHA-256 of the body. */
  readonly bodySha256: string;
}

/** Lower-case hex SHA-256 of a body (`''` for a request without one). */
export function bodySha256(body: string | Uint8Array): string {
  return createHash('sha256').update(body).digest('hex');
}

/** A fresh nonce: 128 random bits, base64url (22 characters). */
export function newNonce(): string {
  return randomBytes(16).toString('base64url');
}

/**
 * The text that is signed: the scheme, then method, path, agent id, caller, timestamp, nonce and
 * body hash, one per line. No field can hold a line break (header values cannot; the agent
 * refuses nonces and hashes of another form), so the text names one request only.
 */
export function canonicalRequest(fields: SignedFields): string {
  const { method, path, agentId, caller, timestamp, nonce, bodySha256: sha } = fields;
  return [SCHEME, method.toUpperCase(), path, agentId, caller, timestamp, nonce, sha].join('\n');
}

/** The signature header's value for these fields. */
export function signRequest(secret: string, fields: SignedFields): string {
  const mac = createHmac('sha256', secret).update(canonicalRequest(fields)).digest('hex');
  return `${SIGNATURE_PREFIX}${mac}`;
}

/** What a caller passes to {@link signedHeaders}. */
export interface RequestToSign {
  readonly method: string;
  readonly path: string;
  readonly agentId: string;
  readonly caller: string;
  /** The exact body text (`''` for a GET). */
  readonly body: string;
  /** @default now */
  readonly timestamp?: number;
  /** @default a fresh {@link newNonce} */
  readonly nonce?: string;
}

/** The headers that sign a request (a fresh nonce each call, unless one is given). */
export function signedHeaders(secret: string, request: RequestToSign): Record<string, string> {
  const fields: SignedFields = {
    method: request.method,
    path: request.path,
    agentId: request.agentId,
    caller: request.caller,
    timestamp: request.timestamp ?? Date.now(),
    nonce: request.nonce ?? newNonce(),
    bodySha256: bodySha256(request.body),
  };
  return {
    [HEADERS.timestamp]: String(fields.timestamp),
    [HEADERS.caller]: fields.caller,
    [HEADERS.agent]: fields.agentId,
    [HEADERS.nonce]: fields.nonce,
    [HEADERS.contentSha256]: fields.bodySha256,
    [HEADERS.signature]: signRequest(secret, fields),
  };
}

/** The signature headers as received (undefined when absent or repeated). */
export type ReceivedHeaders = {
  readonly [K in keyof typeof HEADERS]?: string | undefined;
};

/** A verified request's signed fields, or why it is refused. */
export type Verification =
  | { readonly ok: true; readonly fields: SignedFields }
  | { readonly ok: false; readonly reason: string };

/**
 * Checks a request's signature from its headers alone (the body's hash is one of them): that
 * every header is there and well formed, that its timestamp is within {@link MAX_CLOCK_SKEW_MS}
 * of `now`, that the signature matches (one of the `secret`s: a rotation accepts the new and the
 * old), and that the request is for this agent (`agentId`).
 * It does not check the nonce against earlier requests (see `./replay.ts`) nor the body against
 * its hash (the agent does, once it has read the body).
 */
export function verifyRequest(
  secret: string | readonly string[],
  agentId: string,
  method: string,
  path: string,
  headers: ReceivedHeaders,
  now: number,
): Verification {
  const refuse = (reason: string): Verification => ({ ok: false, reason });
  const missing = (Object.keys(HEADERS) as (keyof typeof HEADERS)[])
    .filter((k) => !headers[k])
    .map((k) => HEADERS[k]);
  if (missing.length > 0) return refuse(`missing ${missing.join(', ')}`);
  const { timestamp, caller, agent, nonce, contentSha256, signature } = headers as Required<{
    [K in keyof typeof HEADERS]: string;
  }>;
  const ts = Number(timestamp);
  if (!/^\d{1,16}$/.test(timestamp) || !Number.isSafeInteger(ts))
    return refuse(`${HEADERS.timestamp} is not a number of milliseconds`);
  if (Math.abs(now - ts) > MAX_CLOCK_SKEW_MS)
    return refuse(
      `${HEADERS.timestamp} is more than ${MAX_CLOCK_SKEW_MS} ms away from the agent's clock`,
    );
  if (!NONCE_PATTERN.test(nonce))
    return refuse(`${HEADERS.nonce} is not 16 to 128 base64url characters`);
  if (!/^[0-9a-f]{64}$/.test(contentSha256))
    return refuse(`${HEADERS.contentSha256} is not a lower-case hex SHA-256`);
  if (caller.length > MAX_CALLER_LENGTH)
    return refuse(`${HEADERS.caller} is longer than ${MAX_CALLER_LENGTH} characters`);
  // Checked over the agent id the request claims, so that only a holder of the secret learns
  // (below) that it reached another agent than it meant.
  const fields: SignedFields = {
    method,
    path,
    agentId: agent,
    caller,
    timestamp: ts,
    nonce,
    bodySha256: contentSha256,
  };
  // Any of the secrets (during a rotation, the new one and the old): each is tried, so the time
  // taken says nothing of which one matched.
  const given = Buffer.from(signature);
  let matched = false;
  for (const s of typeof secret === 'string' ? [secret] : secret) {
    const expected = Buffer.from(signRequest(s, fields));
    if (expected.length === given.length && timingSafeEqual(expected, given)) matched = true;
  }
  if (!matched) {
    return refuse(
      signature.startsWith(SIGNATURE_PREFIX)
        ? 'bad signature'
        : `bad signature: not a protocol ${PROTOCOL_VERSION} signature (${SIGNATURE_PREFIX}...)`,
    );
  }
  if (agent !== agentId) {
    return refuse(
      `the request is for agent ${JSON.stringify(agent)}; this is agent ${JSON.stringify(agentId)}`,
    );
  }
  return { ok: true, fields };
}
