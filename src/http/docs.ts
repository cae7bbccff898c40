// The OpenAPI document, generated from the route schemas, and the docs UI at /docs (assets served locally).
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';
import type { ZodType } from 'zod';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * A route that also takes `multipart/form-data` (read into `request.body` before validation) documents the form
     * here: the OpenAPI document shows it beside the JSON body.
     */
    multipartForm?: ZodType;
  }
}

type TransformInput = Parameters<typeof jsonSchemaTransform>[0];

/**
 * The zod schemas turned into OpenAPI; a route that takes a body also documents the answers any body may get (413
 * past its limit, 415 for a type it does not read), in the error envelope of its 503; and a route's multipart form is
 * documented as a second request content type.
 */
function transform(input: TransformInput): ReturnType<typeof jsonSchemaTransform> {
  const out = jsonSchemaTransform(input);
  const json = out.schema?.body;
  const responses = out.schema?.response as Record<string, unknown> | undefined;
  const envelope = responses?.['503'];
  if (json && responses && envelope) for (const status of ['413', '415']) responses[status] ??= envelope;
  const form = 'route' in input ? input.route.config?.multipartForm : undefined;
  if (!form || !json) return out;
  const multipart = jsonSchemaTransform({ ...input, schema: { body: form } }).schema?.body;
  return {
    ...out,
    schema: {
      ...out.schema,
      body: { content: { 'application/json': { schema: json }, 'multipart/form-data': { schema: multipart } } },
    },
  };
}

const OPENAPI_INFO = {
  title: 'WhatsApp Multi-Tenant API',
  description:
    'Runs many WhatsApp accounts side by side, one per AI agent: sessions, inbound forwarding to the AI backend, and sending.',
  version: '0.1.0',
};

export async function registerDocs(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: OPENAPI_INFO,
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'The admin key, or an agent API key' },
        },
      },
      tags: [
        { name: 'sessions', description: 'Session lifecycle (admin key; agent key for its own session)' },
        { name: 'agents', description: 'Sending and the AI pipeline (agent key or admin key)' },
        { name: 'chats', description: 'Stored messages and chat history, both directions (agent key or admin key)' },
        { name: 'sandbox', description: 'Sandbox engine control (only when the sandbox is enabled)' },
        { name: 'health', description: 'Health and metrics' },
        { name: 'cluster', description: 'Cluster members and session ownership (admin key)' },
        {
          name: 'webhooks',
          description: 'Signed event deliveries (Standard Webhooks): agent key or admin key; /webhooks admin only',
        },
      ],
    },
    transform,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
}
