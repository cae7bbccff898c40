// Values for the fuzzer: what a route's JSON schema asks for (valid-ish), and what a hostile client sends instead.
import fc from 'fast-check';
import { IMAGES } from '../../src/messaging/__fixtures__/images.js';

/** The subset of JSON Schema that the OpenAPI document of our routes uses. */
export interface JsonSchema {
  type?: string;
  enum?: unknown[];
  anyOf?: JsonSchema[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  items?: JsonSchema;
  maxItems?: number;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: JsonSchema | boolean;
}

/** Nested, though not deeper than fast-check's own printing of a value can follow (the deep ones go as raw text). */
const nested = (depth: number): unknown => {
  let value: unknown = 'bottom';
  for (let i = 0; i < depth; i += 1) value = i % 2 === 0 ? [value] : { a: value };
  return value;
};

/** Strings that have broken services: NUL, lone surrogates, control and format characters, huge ones. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    'a\u0000b',
    '\ud800',
    '\udfff',
    'x\ud83dy',
    '\ufeff',
    '\u202e',
    '%00',
    '../../etc/passwd',
    '{{7*7}}',
    '<script>',
    "'; DROP TABLE whatsapp_user; --",
    '0'.repeat(200),
    '6281234567890@g.us',
    '@c.us',
    '+',
    'null',
    '__proto__',
    'x'.repeat(70_000),
  ),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ maxLength: 20 }).map((s) => `${s}\u0000${s}`),
  fc.string({ maxLength: 20 }).map((s) => `${s}\udc00`),
);

/** Anything JSON can carry, odd types included. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: hostileString, weight: 4 },
  fc.constantFrom(
    null,
    true,
    false,
    0,
    -1,
    1.5,
    1e308,
    -1e308,
    Number.MAX_SAFE_INTEGER + 2,
    [],
    {},
    { __proto__: { admin: true } },
    nested(300),
  ),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.jsonValue({ maxDepth: 3 }),
);

const PNG = IMAGES.png.toString('base64');

/** Values the service understands, by field name, so valid-ish requests reach past validation. */
const HINTS: Record<string, fc.Arbitrary<unknown>> = {
  to: fc.constantFrom(
    '6281234567890',
    '081234567890',
    '+62 812-3456-7890',
    '120363000000000000@g.us',
    '123456789012345@lid',
  ),
  phone: fc.constantFrom('6281234567890', '081234567890', '12'),
  session_id: fc.constantFrom('6281234567890', '120363000000000000@g.us'),
  from: fc.constantFrom('6281234567890', 'status@broadcast', '628111@c.us'),
  data: fc.constantFrom(PNG, `data:image/png;base64,${PNG}`, IMAGES.gif.toString('base64'), 'bm90IGFuIGltYWdl', '!!'),
  url: fc.constantFrom('http://127.0.0.1:9/x.png', 'ftp://example.test/x', 'file:///etc/passwd', 'not a url'),
  engine: fc.constantFrom('sandbox', 'sandbox', 'baileys', 'whatsapp-web'),
  mentions: fc.array(fc.constantFrom('6281234567890', '628111222333@c.us', '123456789012345@lid'), { maxLength: 3 }),
};

/** A value that satisfies the schema, or nearly: the service's domain rules (numbers, images) may still refuse it. */
export function fromSchema(schema: JsonSchema, name = ''): fc.Arbitrary<unknown> {
  const hint = HINTS[name];
  if (hint) return fc.oneof({ arbitrary: hint, weight: 3 }, { arbitrary: plain(schema), weight: 1 });
  return plain(schema);
}

function plain(schema: JsonSchema): fc.Arbitrary<unknown> {
  if (schema.enum) return fc.constantFrom(...schema.enum);
  if (schema.anyOf) return fc.oneof(...schema.anyOf.map((option) => plain(option)));
  switch (schema.type) {
    case 'string': {
      if (schema.pattern) return fc.stringMatching(new RegExp(schema.pattern));
      const minLength = schema.minLength ?? 0;
      return fc.string({ minLength, maxLength: Math.max(minLength, Math.min(schema.maxLength ?? 40, 40)) });
    }
    case 'integer':
      return fc.integer({ min: schema.minimum ?? -1_000, max: Math.min(schema.maximum ?? 1_000, 1_000_000) });
    case 'number':
      return fc.double({ noNaN: true, noDefaultInfinity: true });
    case 'boolean':
      return fc.boolean();
    case 'array':
      return fc.array(schema.items ? plain(schema.items) : fc.jsonValue({ maxDepth: 2 }), {
        maxLength: Math.min(schema.maxItems ?? 4, 4),
      });
    case 'object':
      return objectFrom(schema);
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

function objectFrom(schema: JsonSchema): fc.Arbitrary<Record<string, unknown>> {
  const properties = schema.properties ?? {};
  if (Object.keys(properties).length === 0)
    return fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 });
  const model = Object.fromEntries(Object.entries(properties).map(([key, sub]) => [key, fromSchema(sub, key)]));
  const record = fc.record(model, {
    requiredKeys: (schema.required ?? []).filter((key) => key in model),
  }) as fc.Arbitrary<Record<string, unknown>>;
  if (!('data' in model && 'url' in model)) return record;
  // The media route takes exactly one of data and url, a rule the JSON schema cannot say: mostly keep one.
  return fc.tuple(record, fc.boolean()).map(([body, keepData]) => {
    if (body.data === undefined || body.url === undefined) return body;
    const { data, url, ...rest } = body;
    return keepData ? { ...rest, data } : { ...rest, url };
  });
}

/** A body: valid-ish, valid-ish with one field spoiled, a field missing, or JSON of any shape. */
export function bodyFrom(schema: JsonSchema | undefined): fc.Arbitrary<unknown> {
  if (!schema) return fc.oneof(fc.constant(undefined), fc.jsonValue({ maxDepth: 2 }));
  const valid = fromSchema(schema);
  const keys = Object.keys(schema.properties ?? {});
  const spoiled =
    keys.length === 0
      ? valid
      : fc.tuple(valid, fc.constantFrom(...keys), hostileValue, fc.boolean()).map(([body, key, bad, drop]) => {
          const copy = { ...(body as Record<string, unknown>) };
          if (drop) delete copy[key];
          else copy[key] = bad;
          return copy;
        });
  return fc.oneof(
    { arbitrary: valid, weight: 6 },
    { arbitrary: spoiled, weight: 4 },
    { arbitrary: fc.jsonValue({ maxDepth: 3 }), weight: 1 },
    { arbitrary: hostileValue, weight: 1 },
  );
}
