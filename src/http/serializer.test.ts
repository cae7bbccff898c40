import Fastify from 'fastify';
import { validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { serializerCompiler } from './serializer.js';

const result = z.object({
  data: z.object({ id: z.string(), status: z.enum(['queued', 'sent']), waId: z.string().nullable() }),
  traceId: z.string(),
});

/** One route answering whatever `answer` returns, through the serializer under test. */
async function serve(schema: z.ZodType, answer: () => unknown) {
  const app = Fastify({ logger: false }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.get('/', { schema: { response: { 200: schema } } }, async () => answer() as never);
  await app.ready();
  const res = await app.inject({ method: 'GET', url: '/' });
  await app.close();
  return res;
}

describe('serializerCompiler', () => {
  it('writes what the schema declares, nulls included, and leaves everything else out', async () => {
    const res = await serve(result, () => ({
      data: { id: 'm1', status: 'sent', waId: null, media: 'secret bytes' },
      traceId: 't1',
      internal: { password: 'x' },
    }));
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe('{"data":{"id":"m1","status":"sent","waId":null},"traceId":"t1"}');
  });

  it('fails the response when a required property is missing', async () => {
    const res = await serve(result, () => ({ data: { status: 'sent', waId: null }, traceId: 't1' }));
    expect(res.statusCode).toBe(500);
    expect(res.body).not.toContain('sent');
  });

  it('keeps the zod serializer for a schema JSON Schema cannot express', async () => {
    const dated = z.object({ at: z.date().transform((date) => date.toISOString()) });
    const ok = await serve(dated, () => ({ at: new Date(Date.UTC(2026, 0, 2)) }));
    expect(ok.json()).toEqual({ at: '2026-01-02T00:00:00.000Z' });
    // zod checks the value, as before: a string where a date belongs is refused.
    const bad = await serve(dated, () => ({ at: 'yesterday' }));
    expect(bad.statusCode).toBe(500);
  });
});
