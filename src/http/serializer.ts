// Response serialization. Each route's zod response schema is turned into JSON Schema once, at startup, and compiled
// by fast-json-stringify, the serializer Fastify itself uses for JSON Schema routes: a response then costs a fraction
// of a zod parse plus JSON.stringify. The schema still decides what goes out: properties it does not declare are
// left out, and a missing required one is a 500. A schema that JSON Schema cannot express keeps the zod serializer.
import fastJson from 'fast-json-stringify';
import type { FastifySerializerCompiler } from 'fastify/types/schema.js';
import { serializerCompiler as zodSerializerCompiler } from 'fastify-type-provider-zod';
import { z } from 'zod';

export const serializerCompiler: FastifySerializerCompiler<unknown> = (route) => {
  const { schema } = route;
  if (schema instanceof z.ZodType) {
    const jsonSchema = toJsonSchema(schema);
    if (jsonSchema) return fastJson(jsonSchema);
  }
  return zodSerializerCompiler(route as Parameters<typeof zodSerializerCompiler>[0]);
};

/** The schema as fast-json-stringify reads it (OpenAPI 3.0 flavour: `nullable: true`), or null when it cannot be. */
function toJsonSchema(schema: z.ZodType): fastJson.Schema | null {
  try {
    return z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'output', unrepresentable: 'throw' }) as fastJson.Schema;
  } catch {
    return null;
  }
}
