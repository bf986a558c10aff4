/**
 * Writes docs/agent-protocol.schema.json: the JSON Schema of every message of the agent
 * protocol, generated from the zod schemas in src/protocol/agent-v2.ts (the single source).
 * `npm run protocol:schema` rewrites it; a test fails when the committed file is out of date.
 */
import { writeFileSync } from 'node:fs';
import { protocolJsonSchema } from '../src/protocol/json-schema.js';

const out = new URL('../docs/agent-protocol.schema.json', import.meta.url);
writeFileSync(out, `${JSON.stringify(protocolJsonSchema(), null, 2)}\n`);
console.log(`wrote ${out.pathname}`);
