/**
 * API tokens for tests: one per role, configured on the nodes tests start, and a fetch that
 * carries one.
 */
import type { Role } from '../../src/http/auth.js';

/** A token per role (long enough for the configuration's minimum). */
export const TOKENS: Readonly<Record<Role, string>> = {
  viewer: 'test-viewer-token-0123456789',
  operator: 'test-operator-token-0123456789',
  admin: 'test-admin-token-0123456789',
};

/** `api.tokens` of a test configuration: one token per role. */
export function testTokens(): { name: string; role: Role; token: string }[] {
  return (Object.entries(TOKENS) as [Role, string][]).map(([role, token]) => ({
    name: `test-${role}`,
    role,
    token,
  }));
}

/** Headers of an API call as `role` (JSON body). */
export function authHeaders(role: Role = 'admin'): Record<string, string> {
  return { authorization: `Bearer ${TOKENS[role]}`, 'content-type': 'application/json' };
}

/** GET as `role` (admin by default). */
export function authGet(url: string, role: Role = 'admin'): Promise<Response> {
  return fetch(url, { headers: { authorization: `Bearer ${TOKENS[role]}` } });
}
