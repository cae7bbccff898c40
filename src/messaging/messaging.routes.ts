// /agents/{agentId}/messages and /media: send text and images through the outbox, and read a message's state.
import type { onRequestHookHandler } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Auth } from '../auth/auth.hooks.js';
import { AppError } from '../errors.js';
import { TEXT_BODY_LIMIT } from '../http/body-limits.js';
import { agentParams, envelope, errorResponses } from '../http/schemas.js';
import type { SubmitResult } from '../outbox/outbox.js';
import type { MediaBudget } from './media-budget.js';
import {
  idempotencyHeaders,
  messageParams,
  messageStateSchema,
  sendMediaBody,
  sendMediaResultSchema,
  sendMessageBody,
  sendResultSchema,
} from './messaging.schemas.js';
import type { MessagingService } from './messaging.service.js';

export interface MessagingRoutesOptions {
  messaging: MessagingService;
  auth: Auth;
  /** The media route's body limit: MEDIA_MAX_BYTES in base64 plus the JSON around it (http/body-limits.ts). */
  mediaBodyLimit: number;
  mediaBudget: MediaBudget;
}

export const messagingRoutes: FastifyPluginAsyncZod<MessagingRoutesOptions> = async (
  app,
  { messaging, auth, mediaBodyLimit, mediaBudget },
) => {
  const tags = ['messages'];
  const security = [{ bearerAuth: [] }];
  const onRequest = auth.agent();
  // After the key check, before the body is read: an image holds its place until its answer is sent (or the client
  // goes away).
  const takeMediaPlace: onRequestHookHandler = (request, reply, done) => {
    const agentId = (request.params as { agentId?: unknown }).agentId;
    const release = mediaBudget.take(typeof agentId === 'string' ? agentId : '');
    if (!release) {
      done(
        new AppError('RATE_LIMITED', 'Too many images in flight for this agent or this service; retry shortly.', {
          headers: { 'retry-after': '1' },
        }),
      );
      return;
    }
    reply.raw.once('close', release);
    done();
  };

  app.post(
    '/agents/:agentId/messages',
    {
      onRequest,
      bodyLimit: TEXT_BODY_LIMIT,
      schema: {
        tags,
        security,
        summary: 'Send a text message (200 when sent within SEND_WAIT_MS, else 202 and queued)',
        params: agentParams,
        headers: idempotencyHeaders,
        body: sendMessageBody,
        response: {
          200: envelope(sendResultSchema),
          202: envelope(sendResultSchema),
          ...errorResponses(400, 401, 403, 409, 429),
        },
      },
    },
    async (request, reply) => {
      const data = await messaging.sendText(request.params.agentId, request.body, {
        idempotencyKey: request.headers['idempotency-key'],
        traceId: request.id,
      });
      return reply.code(data.delivered ? 200 : 202).send({ data: sendResult(data), traceId: request.id });
    },
  );

  app.post(
    '/agents/:agentId/media',
    {
      onRequest: [onRequest, takeMediaPlace],
      bodyLimit: mediaBodyLimit,
      schema: {
        tags,
        security,
        summary: 'Send an image from base64 or a URL (JPEG, PNG, WebP or GIF, checked on the bytes)',
        params: agentParams,
        headers: idempotencyHeaders,
        body: sendMediaBody,
        response: {
          200: envelope(sendMediaResultSchema),
          202: envelope(sendMediaResultSchema),
          ...errorResponses(400, 401, 403, 409, 413, 415, 422, 429),
        },
      },
    },
    async (request, reply) => {
      const data = await messaging.sendImage(request.params.agentId, request.body, {
        idempotencyKey: request.headers['idempotency-key'],
        traceId: request.id,
      });
      return reply
        .code(data.delivered ? 200 : 202)
        .send({ data: { ...sendResult(data), previewPath: data.previewPath ?? null }, traceId: request.id });
    },
  );

  app.get(
    '/agents/:agentId/messages/:messageId',
    {
      onRequest,
      schema: {
        tags,
        security,
        summary: "A sent message's state: queued, sending, sent or failed",
        params: messageParams,
        response: { 200: envelope(messageStateSchema), ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => ({
      data: await messaging.getMessage(request.params.agentId, request.params.messageId),
      traceId: request.id,
    }),
  );
};

/** The text response: the outbox result without the image-only field. */
function sendResult({ delivered, messageId, status, waMessageId }: SubmitResult) {
  return { delivered, messageId, status, waMessageId };
}
