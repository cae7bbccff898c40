// HTTP requests for the fuzzer, generated from the app's own OpenAPI document: every route, its path, query, headers
// and body, valid-ish or hostile, with and without a key.
import fc from 'fast-check';
import { bodyFrom, fromSchema, hostileString, type JsonSchema } from './values.js';

export interface FuzzRequest {
  method: 'GET' | 'POST' | 'DELETE' | 'PUT' | 'PATCH';
  url: string;
  headers: Record<string, string>;
  /** A string is sent as it is; anything else as JSON. */
  payload?: unknown;
}

interface Parameter {
  in: 'path' | 'query' | 'header';
  name: string;
  schema: JsonSchema;
}

interface Operation {
  parameters?: Parameter[];
  requestBody?: { content?: Record<string, { schema?: JsonSchema }> };
}

export interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>;
}

export interface FuzzContext {
  adminKey: string;
  /** The connected agent the fuzzer sends through; only agent routes reach it, so it stays usable. */
  live: { agentId: string; apiKey: string };
  /** Agents the session and sandbox routes may create, connect, reconnect and delete. */
  spares: string[];
}

/** Routes that would hold the request open: the event stream, with the admin key, never ends by itself. */
const STREAMS = new Set(['/events/sessions']);
/** Paths outside the document: docs, dashboard, and none at all. */
const EXTRA_PATHS = [
  '/',
  '/docs',
  '/docs/json',
  '/dashboard',
  '/dashboard/',
  '/dashboard/index.html',
  '/dashboard/%2e%2e/%2e%2e/package.json',
  '/dashboard/..%2F..%2Fpackage.json',
  '/sessions/',
  '/agents//messages',
  '/agents/%00/messages',
  '/nope',
];

/** Path segments as a client might send them, percent-encoded or not. */
const oddSegment = fc.constantFrom(
  '%00',
  'a%00b',
  '%ED%A0%80',
  '%FF',
  '%C0%AE%C0%AE',
  '..',
  '%2e%2e',
  'a%2Fb',
  'a b',
  '%20',
  'x'.repeat(65),
  '%F0%9F%91%8D',
  'agent.with.dots',
  '-',
  '_',
);

/** HTTP header values: only what a real server lets through (tab, printable ASCII, Latin-1). */
const headerText = fc.string({
  unit: fc
    .oneof(fc.constant('\t'), fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0x80, max: 0xff }))
    .map((code) => (typeof code === 'string' ? code : String.fromCharCode(code))),
  maxLength: 300,
});

export function requestArbitrary(document: OpenApiDocument, context: FuzzContext): fc.Arbitrary<FuzzRequest> {
  const routes: fc.WeightedArbitrary<FuzzRequest>[] = [];
  for (const [template, operations] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      // Routes that take a body have more to get wrong; the agent routes carry what customers send.
      const weight = (operation.requestBody ? 2 : 1) + (template.startsWith('/agents/') ? 2 : 0);
      const arbitrary = routeRequest(template, method.toUpperCase() as FuzzRequest['method'], operation, context);
      routes.push({ arbitrary, weight });
    }
  }
  const stray = fc.record({
    method: fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH'),
    url: fc.oneof(
      fc.constantFrom(...EXTRA_PATHS),
      fc.webPath().map((p) => p || '/'),
    ),
    headers: authHeaders(context, ''),
    payload: fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined }),
  }) as fc.Arbitrary<FuzzRequest>;
  return fc.oneof({ arbitrary: fc.oneof(...routes), weight: 12 }, { arbitrary: stray, weight: 1 });
}

function routeRequest(
  template: string,
  method: FuzzRequest['method'],
  operation: Operation,
  context: FuzzContext,
): fc.Arbitrary<FuzzRequest> {
  const parameters = operation.parameters ?? [];
  const bodySchema = operation.requestBody?.content?.['application/json']?.schema;
  const pathParams = parameters.filter((p) => p.in === 'path');
  const segments = fc.record(
    Object.fromEntries(pathParams.map((p) => [p.name, pathValue(template, method, p, context)])),
  ) as fc.Arbitrary<Record<string, string>>;
  const query = fc.array(
    fc.oneof(
      ...parameters.filter((p) => p.in === 'query').map((p) => queryPair(p)),
      fc.tuple(fc.constantFrom('x', 'waitForQr', 'limit', '__proto__'), headerText),
    ),
    { maxLength: 3 },
  );
  const idempotency = parameters.some((p) => p.in === 'header' && p.name === 'idempotency-key')
    ? fc.option(fc.oneof(headerText, fc.uuid()), { nil: undefined })
    : fc.constant(undefined);
  const body = method === 'GET' || method === 'DELETE' ? fc.constant(undefined) : bodyFrom(bodySchema);
  return fc
    .record({
      segments,
      query,
      auth: authHeaders(context, template),
      idempotency,
      body,
      // One case in fifteen sends a body of the wrong kind instead.
      raw: fc.oneof({ arbitrary: fc.constant(undefined), weight: 14 }, { arbitrary: rawBody, weight: 1 }),
      // One in six nests one field (known or extra) deeper than a recursive walk or JSON.stringify can follow.
      deepen: fc.oneof(
        { arbitrary: fc.constant(undefined), weight: 5 },
        {
          arbitrary: fc.record({
            field: fc.constantFrom(...Object.keys(bodySchema?.properties ?? {}), 'extra'),
            depth: fc.constantFrom(70, 5_000, 50_000),
          }),
          weight: 1,
        },
      ),
    })
    .map(({ segments: values, query: pairs, auth, idempotency: key, body: generated, raw, deepen }) => {
      const payload =
        deepen && isPlainObject(generated) ? withDeepField(generated, deepen.field, deepen.depth) : generated;
      const path = template.replace(/\{(\w+)\}/g, (_, name: string) => values[name] ?? '');
      const search = pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeSegment(v)}`).join('&');
      const headers = { ...auth, ...(key === undefined ? {} : { 'idempotency-key': key }), ...(raw?.headers ?? {}) };
      const deepHeaders = typeof payload === 'string' && !raw ? { 'content-type': 'application/json' } : {};
      return {
        method,
        url: search ? `${path}?${search}` : path,
        headers: { ...deepHeaders, ...headers },
        payload: raw ? raw.payload : payload,
      };
    });
}

function pathValue(template: string, method: string, parameter: Parameter, context: FuzzContext): fc.Arbitrary<string> {
  if (parameter.name !== 'agentId') {
    return fc.oneof(fc.uuid(), fc.string({ maxLength: 70 }).map(encodeSegment), oddSegment);
  }
  // The live agent takes the agent routes and the read-only ones; only spares are created, deleted, disconnected.
  const reachesLive =
    template.startsWith('/agents/') ||
    template.endsWith('/inbound') ||
    template.endsWith('/sent') ||
    (template === '/sessions/{agentId}' && method === 'GET');
  const known = reachesLive ? fc.constant(context.live.agentId) : fc.constantFrom(...context.spares);
  return fc.oneof(
    { arbitrary: known, weight: 8 },
    { arbitrary: fc.constantFrom(...context.spares), weight: reachesLive ? 2 : 0 },
    { arbitrary: fromSchema(parameter.schema).map((v) => encodeSegment(String(v))), weight: 1 },
    { arbitrary: oddSegment, weight: 1 },
    { arbitrary: hostileString.map(encodeSegment), weight: 1 },
  );
}

function queryPair(parameter: Parameter): fc.Arbitrary<[string, string]> {
  return fc.tuple(
    fc.constant(parameter.name),
    fc.oneof(
      fromSchema(parameter.schema).map(String),
      fc.constantFrom('', '-1', '1e3', '0x10', '99999999999999999999', 'NaN', 'true', '%00'),
      hostileString,
    ),
  );
}

function authHeaders(context: FuzzContext, template: string): fc.Arbitrary<Record<string, string>> {
  // The admin key opens the event stream, which would never end: only other keys go there.
  const adminAllowed = !STREAMS.has(template);
  // The key that opens the route most of the time (the agent's own on agent routes), so cases get past the door.
  const opens = template.startsWith('/agents/') ? context.live.apiKey : context.adminKey;
  const keys = [
    ...(adminAllowed ? [opens, opens, opens, context.adminKey] : []),
    context.live.apiKey,
    'wrong-key-0123456789',
  ];
  return fc.oneof(
    { arbitrary: fc.constantFrom(...keys).map((key) => ({ authorization: `Bearer ${key}` })), weight: 10 },
    { arbitrary: fc.constant({}), weight: 1 },
    {
      arbitrary: fc
        .oneof(fc.constantFrom('Bearer', 'Bearer ', 'Basic YWRtaW46YWRtaW4=', 'bearer  x  y'), headerText)
        .map((value) => ({ authorization: value })),
      weight: 1,
    },
    {
      arbitrary: fc
        .record({ 'x-request-id': headerText })
        .map((h) => ({ ...h, authorization: `Bearer ${context.adminKey}` })),
      weight: adminAllowed ? 1 : 0,
    },
  );
}

/** A body that is not what JSON routes expect: broken JSON, another type, or a body too large. */
const rawBody: fc.Arbitrary<{ headers: Record<string, string>; payload: string }> = fc.oneof(
  fc
    .constantFrom(
      '{"to":',
      '{',
      'null',
      '"just a string"',
      '[]',
      '{"__proto__":{"x":1}}',
      '{"constructor":{"prototype":{}}}',
      '',
    )
    .map((payload) => ({ headers: { 'content-type': 'application/json' }, payload })),
  fc
    .constantFrom(
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/json; charset=utf-16',
      'application/xml',
    )
    .map((type) => ({ headers: { 'content-type': type }, payload: 'to=1&message=x' })),
  fc.constant({
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ message: 'x'.repeat(1_100_000) }),
  }),
  // JSON nested deeper than a recursive walk or JSON.stringify can follow, in the free fields and as the whole body.
  fc
    .constantFrom(
      `{"input":"hi","session_id":"6281234567890","metadata":${deep(50_000)}}`,
      `{"input":"hi","session_id":"6281234567890","parameters":{"x":${deep(50_000)}},"extra":${deep(50_000)}}`,
      `{"to":"6281234567890","message":"hi","mentions":${deep(50_000)}}`,
      deep(200_000),
    )
    .map((payload) => ({ headers: { 'content-type': 'application/json' }, payload })),
);

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The body as JSON text with `field` replaced by arrays `depth` deep (as text: JSON.stringify could not write it). */
function withDeepField(body: Record<string, unknown>, field: string, depth: number): string {
  const { [field]: _replaced, ...rest } = body;
  const head = JSON.stringify(rest).slice(0, -1);
  return `${head}${head.length > 1 ? ',' : ''}${JSON.stringify(field)}:${deep(depth)}}`;
}

/** `[[[…]]]`, `depth` arrays deep. */
function deep(depth: number): string {
  return `${'['.repeat(depth)}${']'.repeat(depth)}`;
}

/** Percent-encodes as UTF-8, lone surrogates included (as WTF-8 would; encodeURIComponent throws on those). */
function encodeSegment(value: string): string {
  let out = '';
  for (const char of value) {
    if (/^[A-Za-z0-9_.~-]$/.test(char)) out += char;
    else
      for (const byte of utf8(char.codePointAt(0) ?? 0)) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function utf8(code: number): number[] {
  if (code < 0x80) return [code];
  if (code < 0x800) return [0xc0 | (code >> 6), 0x80 | (code & 0x3f)];
  if (code < 0x10000) return [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)];
  return [0xf0 | (code >> 18), 0x80 | ((code >> 12) & 0x3f), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)];
}
