// /agents/{agentId}/webhooks (the agent's key or the admin key) and /webhooks (admin-level endpoints, the admin key
// only: every agent's events): the endpoints, their secrets, their deliveries, a test ping.
import type { onRequestHookHandler } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Auth } from '../auth/auth.hooks.js';
import type { Clock } from '../clock.js';
import { AppError, isAppError } from '../errors.js';
import { agentParams, envelope, errorResponses, optionalBody } from '../http/schemas.js';
import type { AddressChecker } from '../messaging/address-policy.js';
import { checkScheme, type HostLookup, resolveChecked } from '../messaging/media-fetch.js';
import type { WebhooksRepository } from './webhooks.repository.js';
import {
  adminDeliveryParams,
  adminWebhookParams,
  createWebhookBody,
  deliveryListSchema,
  deliveryPageQuery,
  deliveryParams,
  deliverySchema,
  secretSchema,
  updateWebhookBody,
  webhookListSchema,
  webhookParams,
  webhookSchema,
  webhookWithSecretSchema,
} from './webhooks.schemas.js';

/** How long the previous secret also signs after a rotation. */
export const SECRET_GRACE_MS = 24 * 60 * 60 * 1000;

export interface WebhooksRoutesOptions {
  repository: WebhooksRepository;
  auth: Auth;
  clock: Clock;
  agentExists(agentId: string): Promise<boolean>;
  /** The same policy as media URLs, with WEBHOOK_ALLOW_PRIVATE_NETWORKS in place of MEDIA_ALLOW_PRIVATE_NETWORKS. */
  checkAddress: AddressChecker;
  lookup?: HostLookup;
}

const forbidden = (message: string) => new AppError('WEBHOOK_URL_FORBIDDEN', message);

/** Refuses a URL whose host resolves to an address the policy refuses (checked again at every connection). */
async function checkUrl(url: string, options: WebhooksRoutesOptions): Promise<void> {
  let parsed: URL;
  try {
    parsed = checkScheme(url);
  } catch {
    throw forbidden('The webhook URL must be an http or https URL.');
  }
  if (parsed.username || parsed.password) throw forbidden('The webhook URL must not carry credentials.');
  const port = Number(parsed.port) || (parsed.protocol === 'https:' ? 443 : 80);
  try {
    await resolveChecked(parsed.hostname, port, options);
  } catch (err) {
    if (isAppError(err)) throw err;
    throw forbidden('The webhook URL points to a private or reserved address, or does not resolve.');
  }
}

interface Scope {
  base: string;
  tags: string[];
  onRequest: onRequestHookHandler;
  who: string;
}

export const webhooksRoutes: FastifyPluginAsyncZod<WebhooksRoutesOptions> = async (app, options) => {
  const { repository, auth, clock } = options;
  const security = [{ bearerAuth: [] }];
  const scopes: Array<Scope & { admin: boolean }> = [
    {
      base: '/agents/:agentId/webhooks',
      tags: ['webhooks'],
      onRequest: auth.agent(),
      who: "the agent's",
      admin: false,
    },
    { base: '/webhooks', tags: ['webhooks'], onRequest: auth.admin(), who: 'admin-level', admin: true },
  ];

  /** The scope of a request: the agent (which must exist), or null for admin-level endpoints. */
  const scopeOf = async (params: { agentId?: string; id?: string }): Promise<string | null> => {
    if (params.agentId === undefined) return null;
    if (!(await options.agentExists(params.agentId))) throw new AppError('SESSION_NOT_FOUND');
    return params.agentId;
  };
  const endpoint = async (params: { agentId?: string; id: string }) => {
    const scope = await scopeOf(params);
    const found = await repository.get(scope, params.id);
    if (!found) throw new AppError('WEBHOOK_NOT_FOUND');
    return found;
  };

  for (const { base, tags, onRequest, who, admin } of scopes) {
    const listParams = admin ? z.object({}) : agentParams;
    const oneParams = admin ? adminWebhookParams : webhookParams;
    const oneDelivery = admin ? adminDeliveryParams : deliveryParams;
    const common = { tags, security };

    app.post(
      base,
      {
        onRequest,
        schema: {
          ...common,
          summary: `Create a webhook endpoint (${who}); its whsec_ secret is in this answer only`,
          params: listParams,
          body: createWebhookBody,
          response: { 201: envelope(webhookWithSecretSchema), ...errorResponses(400, 401, 403, 404) },
        },
      },
      async (request, reply) => {
        const scope = await scopeOf(request.params);
        await checkUrl(request.body.url, options);
        const created = await repository.create(scope, request.body);
        return reply.code(201).send({ data: created, traceId: request.id });
      },
    );

    app.get(
      base,
      {
        onRequest,
        schema: {
          ...common,
          summary: `List the ${who} webhook endpoints`,
          params: listParams,
          response: { 200: envelope(webhookListSchema), ...errorResponses(400, 401, 403, 404) },
        },
      },
      async (request) => {
        const scope = await scopeOf(request.params);
        return { data: { items: await repository.list(scope) }, traceId: request.id };
      },
    );

    app.get(
      `${base}/:id`,
      {
        onRequest,
        schema: {
          ...common,
          summary: 'Read a webhook endpoint (never its secret)',
          params: oneParams,
          response: { 200: envelope(webhookSchema), ...errorResponses(400, 401, 403, 404) },
        },
      },
      async (request) => ({ data: await endpoint(request.params), traceId: request.id }),
    );

    app.patch(
      `${base}/:id`,
      {
        onRequest,
        schema: {
          ...common,
          summary: 'Change a webhook endpoint: url, events, enabled, description',
          params: oneParams,
          body: updateWebhookBody,
          response: { 200: envelope(webhookSchema), ...errorResponses(400, 401, 403, 404) },
        },
      },
      async (request) => {
        const scope = await scopeOf(request.params);
        if (request.body.url !== undefined) await checkUrl(request.body.url, options);
        const updated = await repository.update(scope, request.params.id, request.body);
        if (!updated) throw new AppError('WEBHOOK_NOT_FOUND');
        return { data: updated, traceId: request.id };
      },
    );

    app.delete(
      `${base}/:id`,
      {
        onRequest,
        schema: {
          ...common,
          summary: 'Delete a webhook endpoint and its deliveries',
          params: oneParams,
          response: { 200: envelope(z.object({ deleted: z.boolean() })), ...errorResponses(400, 401, 403, 404) },
        },
      },
      async (request) => {
        const scope = await scopeOf(request.params);
        if (!(await repository.delete(scope, request.params.id))) throw new AppError('WEBHOOK_NOT_FOUND');
        return { data: { deleted: true }, traceId: request.id };
      },
    );

    app.post(
      `${base}/:id/rotate-secret`,
      {
        onRequest,
        schema: {
          ...common,
          summary: 'A new secret, shown once; the previous one also signs for 24 hours',
          params: oneParams,
          body: optionalBody(z.object({})),
          response: { 200: envelope(secretSchema), ...errorResponses(400, 401, 403, 404) },
        },
      },
      async (request) => {
        const scope = await scopeOf(request.params);
        const graceUntil = new Date(clock.now() + SECRET_GRACE_MS);
        const secret = await repository.rotateSecret(scope, request.params.id, graceUntil);
        if (secret === undefined) throw new AppError('WEBHOOK_NOT_FOUND');
        return { data: { secret, previousSecretExpiresAt: graceUntil.toISOString() }, traceId: request.id };
      },
    );

    app.post(
      `${base}/:id/test`,
      {
        onRequest,
        schema: {
          ...common,
          summary: 'Send a webhook.test event to this endpoint (delivered like any other)',
          params: oneParams,
          body: optionalBody(z.object({})),
          response: { 202: envelope(deliverySchema), ...errorResponses(400, 401, 403, 404) },
        },
      },
      async (request, reply) => {
        const found = await endpoint(request.params);
        const delivery = await repository.enqueueTest(found.id, found.agentId, new Date(clock.now()));
        return reply.code(202).send({ data: delivery, traceId: request.id });
      },
    );

    app.get(
      `${base}/:id/deliveries`,
      {
        onRequest,
        schema: {
          ...common,
          summary: "The endpoint's deliveries, newest first (kept MESSAGE_RETENTION_DAYS once settled)",
          params: oneParams,
          querystring: deliveryPageQuery,
          response: { 200: envelope(deliveryListSchema), ...errorResponses(400, 401, 403, 404) },
        },
      },
      async (request) => {
        const found = await endpoint(request.params);
        const { limit, cursor, status } = request.query;
        const page = await repository.deliveries(found.id, { limit, before: cursor ?? null, status });
        return { data: page, traceId: request.id };
      },
    );

    app.post(
      `${base}/:id/deliveries/:deliveryId/retry`,
      {
        onRequest,
        schema: {
          ...common,
          summary: 'Attempt a delivery again now (a failed one too; one being attempted right now is left to finish)',
          params: oneDelivery,
          body: optionalBody(z.object({})),
          response: { 202: envelope(deliverySchema), ...errorResponses(400, 401, 403, 404) },
        },
      },
      async (request, reply) => {
        const found = await endpoint(request.params);
        const delivery = await repository.retry(found.id, request.params.deliveryId, new Date(clock.now()));
        if (!delivery) throw new AppError('DELIVERY_NOT_FOUND');
        return reply.code(202).send({ data: delivery, traceId: request.id });
      },
    );
  }
};
