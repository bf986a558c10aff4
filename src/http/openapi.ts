/**
 * The OpenAPI 3.1 document of the API, generated from the routes' zod contracts (routes.ts) with
 * zod's own JSON Schema: requests as their input type, answers as their output type. Every
 * route carries its role (`x-coco-role`) and its errors; the access hook's answers (401, 403,
 * 415, 421) are added where they apply.
 *
 * @module
 */
import { z } from 'zod';
import { ErrorCode } from '../core/errors.js';
import { errorAnswer } from './contracts.js';
import type { RouteSpec } from './routes.js';

type Json = Record<string, unknown>;

/** `/v1/commands/:id` → `/v1/commands/{id}`. */
function openApiPath(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

/** A name for a route's operation: `GET /v1/commands/:id/cancel` → `get_v1_commands_id_cancel`. */
function operationId(spec: RouteSpec): string {
  return `${spec.method.toLowerCase()}${spec.url.replace(/[^A-Za-z0-9]+/g, '_')}`.replace(/_$/, '');
}

/** JSON Schemas of many zod schemas at once, references between them as component refs. */
function components(
  named: ReadonlyMap<string, z.ZodType>,
  io: 'input' | 'output',
): Record<string, Json> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of named) registry.add(schema, { id });
  const { schemas } = z.toJSONSchema(registry, {
    io,
    uri: (id) => `#/components/schemas/${id}`,
    unrepresentable: 'any',
  }) as { schemas: Record<string, Json> };
  for (const s of Object.values(schemas)) {
    delete s.$schema;
    delete s.$id;
  }
  // Subschemas several components use but none is named are put under `__shared` (as $defs):
  // each becomes a component of its own, and the references follow.
  const shared = (schemas.__shared?.$defs ?? {}) as Record<string, Json>;
  delete schemas.__shared;
  const prefix = `${io}_shared_`;
  for (const [name, s] of Object.entries(shared)) schemas[`${prefix}${name}`] = s;
  return JSON.parse(
    JSON.stringify(schemas).replaceAll(
      '#/components/schemas/__shared#/$defs/',
      `#/components/schemas/${prefix}`,
    ),
  ) as Record<string, Json>;
}

/** Named schemas the answers share (they show as components of their own). */
export interface SharedSchemas {
  readonly [name: string]: z.ZodType;
}

/** Builds the OpenAPI 3.1 document of `routes`. */
export function openApiDocument(
  routes: readonly RouteSpec[],
  shared: SharedSchemas,
  version: string,
): Json {
  const outputs = new Map<string, z.ZodType>(Object.entries(shared));
  outputs.set('Error', errorAnswer);
  const inputs = new Map<string, z.ZodType>();
  const answerName = new Map<z.ZodType, string>(Object.entries(shared).map(([k, v]) => [v, k]));
  for (const spec of routes) {
    const id = operationId(spec);
    if (spec.body) inputs.set(`${id}_body`, spec.body);
    if (spec.query) inputs.set(`${id}_query`, spec.query);
    if (spec.params) inputs.set(`${id}_params`, spec.params);
    if (spec.ok.schema !== 'sse' && !answerName.has(spec.ok.schema)) {
      outputs.set(`${id}_answer`, spec.ok.schema);
      answerName.set(spec.ok.schema, `${id}_answer`);
    }
  }
  const out = components(outputs, 'output');
  const inp = components(inputs, 'input');
  const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
  const errorResponse = (description: string, codes: readonly string[]): Json => ({
    description: `${description} (${codes.join(', ')})`,
    content: { 'application/json': { schema: ref('Error') } },
  });

  const paths: Record<string, Record<string, Json>> = {};
  for (const spec of routes) {
    const id = operationId(spec);
    const parameters: Json[] = [];
    const addParameters = (where: 'path' | 'query', name: string): void => {
      const schema = inp[name];
      const props = (schema?.properties ?? {}) as Record<string, Json>;
      const required = new Set((schema?.required ?? []) as string[]);
      for (const [key, s] of Object.entries(props)) {
        const { description, ...rest } = s;
        parameters.push({
          name: key,
          in: where,
          required: where === 'path' || required.has(key),
          schema: rest,
          ...(typeof description === 'string' ? { description } : {}),
        });
      }
      delete inp[name];
    };
    if (spec.params) addParameters('path', `${id}_params`);
    if (spec.query) addParameters('query', `${id}_query`);
    const responses: Record<string, Json> = {};
    if (spec.ok.schema === 'sse') {
      responses[String(spec.ok.status)] = {
        description: 'a stream of server-sent events',
        content: { 'text/event-stream': { schema: { type: 'string' } } },
      };
    } else {
      const name = answerName.get(spec.ok.schema) ?? `${id}_answer`;
      for (const status of [spec.ok.status, ...(spec.ok.also ?? [])])
        responses[String(status)] = {
          description: 'success',
          content: { 'application/json': { schema: ref(name) } },
        };
      if (spec.ok.notModified === true)
        responses['304'] = {
          description: 'not modified: the ETag sent in If-None-Match is still the answer',
        };
    }
    const errors: Record<number, string[]> = {};
    const addError = (status: number, code: string): void => {
      (errors[status] ??= []).push(code);
    };
    for (const [status, codes] of Object.entries(spec.errors ?? {}))
      for (const code of codes) addError(Number(status), code);
    if (spec.params || spec.query || spec.body) addError(400, ErrorCode.BadRequest);
    if (spec.role !== 'public') {
      addError(401, ErrorCode.Unauthorized);
      addError(403, ErrorCode.Forbidden);
      addError(421, ErrorCode.Forbidden);
      if (spec.method === 'POST') addError(415, ErrorCode.UnsupportedMediaType);
      if (spec.body) addError(413, ErrorCode.PayloadTooLarge);
    }
    for (const [status, codes] of Object.entries(errors))
      responses[status] = errorResponse('refused or failed', [...new Set(codes)]);
    const operation: Json = {
      operationId: id,
      summary: spec.summary,
      ...(spec.description ? { description: spec.description } : {}),
      tags: [spec.tag],
      'x-coco-role': spec.role,
      ...(spec.role === 'public' ? { security: [] } : {}),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(spec.body
        ? {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: ref(`${id}_body`) } },
            },
          }
        : {}),
      responses,
    };
    (paths[openApiPath(spec.url)] ??= {})[spec.method.toLowerCase()] = operation;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'coco node API',
      version,
      description:
        'The HTTP API of a coco node. Every route but the public ones needs "Authorization: Bearer <token>"; ' +
        'a token has a role (viewer < operator < admin) and each route names the role it needs (x-coco-role). ' +
        'State-changing routes take only application/json and refuse cross-origin calls. See docs/API.md.',
    },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: { ...out, ...inp },
    },
  };
}
