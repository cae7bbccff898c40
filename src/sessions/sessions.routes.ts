// /sessions: the session lifecycle endpoints.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Auth } from '../auth/auth.hooks.js';
import { type Forwarder, toOwner } from '../cluster/forward.js';
import { agentParams, envelope, errorResponses } from '../http/schemas.js';
import {
  createSessionBody,
  createSessionQuery,
  deleteResultSchema,
  listSessionsQuery,
  pairingCodeBody,
  pairingCodeResultSchema,
  qrResultSchema,
  sessionListSchema,
  sessionStatusSchema,
  updateSessionBody,
} from './sessions.schemas.js';
import type { SessionsService } from './sessions.service.js';

export interface SessionsRoutesOptions {
  sessions: SessionsService;
  auth: Auth;
  /** Sends what acts on a session to the member that runs it (docs/cluster.md). */
  forwarder: Forwarder;
}

export const sessionsRoutes: FastifyPluginAsyncZod<SessionsRoutesOptions> = async (
  app,
  { sessions, auth, forwarder },
) => {
  const admin = auth.sessions();
  const adminOrAgent = auth.sessions({ agentKey: true });
  // Reads come from the board on any member; what acts on a session runs where the session does.
  const preHandler = toOwner(forwarder);
  const tags = ['sessions'];
  const security = [{ bearerAuth: [] }];

  app.post(
    '/sessions',
    {
      onRequest: admin,
      preHandler,
      schema: {
        tags,
        security,
        summary: 'Create a session, or start an existing one that is not connected',
        body: createSessionBody,
        querystring: createSessionQuery,
        response: { 200: envelope(sessionStatusSchema), ...errorResponses(400, 401, 403, 409, 413, 429, 504) },
      },
    },
    async (request) => ({
      data: await sessions.create(request.body, { waitForQr: request.query.waitForQr }),
      traceId: request.id,
    }),
  );

  app.get(
    '/sessions',
    {
      onRequest: admin,
      schema: {
        tags,
        security,
        summary: 'List sessions',
        querystring: listSessionsQuery,
        response: { 200: envelope(sessionListSchema), ...errorResponses(400, 401, 403, 429) },
      },
    },
    async (request) => ({ data: await sessions.list(request.query.limit, request.query.offset), traceId: request.id }),
  );

  app.get(
    '/sessions/:agentId',
    {
      onRequest: adminOrAgent,
      schema: {
        tags,
        security,
        summary: "A session's status, persisted and live",
        params: agentParams,
        response: { 200: envelope(sessionStatusSchema), ...errorResponses(400, 401, 403, 404, 429) },
      },
    },
    async (request) => ({ data: await sessions.get(request.params.agentId), traceId: request.id }),
  );

  app.patch(
    '/sessions/:agentId',
    {
      onRequest: adminOrAgent,
      schema: {
        tags,
        security,
        summary: "Change an agent's settings: its pacing profile",
        description:
          'pacing: "off" (the default: sends go as fast as the rate limit lets them), "human" (random 2-8 s gaps, ' +
          'typing shown ~40 ms a character up to 6 s, 20 s between messages to one recipient, 20 new contacts a ' +
          'day), or a profile object whose missing fields take the "human" values. Queued messages keep the send ' +
          'time already planned for them; switched off, they go at once.',
        params: agentParams,
        body: updateSessionBody,
        response: { 200: envelope(sessionStatusSchema), ...errorResponses(400, 401, 403, 404, 413, 429) },
      },
    },
    async (request) => ({ data: await sessions.update(request.params.agentId, request.body), traceId: request.id }),
  );

  app.delete(
    '/sessions/:agentId',
    {
      onRequest: adminOrAgent,
      preHandler,
      schema: {
        tags,
        security,
        summary: 'Log out, delete the stored login and the row, drop queued messages',
        params: agentParams,
        response: { 200: envelope(deleteResultSchema), ...errorResponses(400, 401, 403, 429) },
      },
    },
    async (request) => ({ data: await sessions.remove(request.params.agentId), traceId: request.id }),
  );

  app.post(
    '/sessions/:agentId/reconnect',
    {
      onRequest: adminOrAgent,
      preHandler,
      schema: {
        tags,
        security,
        summary: 'Stop, clear the stored login and start again for a fresh QR code',
        params: agentParams,
        response: { 200: envelope(sessionStatusSchema), ...errorResponses(400, 401, 403, 404, 429) },
      },
    },
    async (request) => ({ data: await sessions.reconnect(request.params.agentId), traceId: request.id }),
  );

  app.post(
    '/sessions/:agentId/qr',
    {
      onRequest: adminOrAgent,
      preHandler,
      schema: {
        tags,
        security,
        summary: 'Start the client if needed and wait (up to 60 s) for a QR code',
        params: agentParams,
        response: { 200: envelope(qrResultSchema), ...errorResponses(400, 401, 403, 404, 409, 429, 504) },
      },
    },
    async (request) => ({ data: await sessions.waitForQr(request.params.agentId), traceId: request.id }),
  );

  app.get(
    '/sessions/:agentId/qr.png',
    {
      onRequest: adminOrAgent,
      preHandler,
      schema: {
        tags,
        security,
        summary: 'The current QR code as a PNG image',
        params: agentParams,
        produces: ['image/png'],
        response: { 200: z.any().describe('PNG image'), ...errorResponses(400, 401, 403, 404, 409, 429) },
      },
    },
    async (request, reply) => {
      const png = await sessions.qrPng(request.params.agentId);
      return reply.header('cache-control', 'no-store').type('image/png').send(png);
    },
  );

  app.post(
    '/sessions/:agentId/pairing-code',
    {
      onRequest: admin,
      preHandler,
      schema: {
        tags,
        security,
        summary: 'A code to type on the phone instead of scanning the QR code',
        params: agentParams,
        body: pairingCodeBody,
        response: {
          200: envelope(pairingCodeResultSchema),
          ...errorResponses(400, 401, 403, 404, 409, 413, 429, 501, 504),
        },
      },
    },
    async (request) => ({
      data: await sessions.requestPairingCode(request.params.agentId, request.body.phone),
      traceId: request.id,
    }),
  );
};
