// /agents/{agentId}/messages, /media, reactions, read marks and typing: all through the outbox; a message's state.
import { rm } from 'node:fs/promises';
import fastifyMultipart from '@fastify/multipart';
import type { FastifyRequest, onRequestHookHandler, preValidationAsyncHookHandler } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Auth } from '../auth/auth.hooks.js';
import { AppError } from '../errors.js';
import { TEXT_BODY_LIMIT } from '../http/body-limits.js';
import { agentParams, envelope, errorResponses } from '../http/schemas.js';
import { whenClosed } from '../http/when-closed.js';
import type { SubmitContext, SubmitResult } from '../outbox/outbox.js';
import type { MediaBudget } from './media-budget.js';
import {
  chatParams,
  idempotencyHeaders,
  messageParams,
  messageStateSchema,
  reactionBody,
  reactionParams,
  sendMediaBody,
  sendMediaForm,
  sendMediaResultSchema,
  sendMessageBody,
  sendResultSchema,
  typingBody,
} from './messaging.schemas.js';
import type { MessagingService, UploadedFile } from './messaging.service.js';
import { receiveUpload } from './multipart-upload.js';

export interface MessagingRoutesOptions {
  messaging: MessagingService;
  auth: Auth;
  /** The media route's JSON body limit: MEDIA_JSON_MAX_MB in base64 plus the JSON around it (http/body-limits.ts). */
  mediaBodyLimit: number;
  mediaBudget: MediaBudget;
  /** A multipart upload streams to a file here (removed once the request is answered), cut off past uploadMaxBytes. */
  uploadDir: string;
  /** The largest file of any kind: the service applies each kind's own limit after. */
  uploadMaxBytes: number;
}

export const messagingRoutes: FastifyPluginAsyncZod<MessagingRoutesOptions> = async (
  app,
  { messaging, auth, mediaBodyLimit, mediaBudget, uploadDir, uploadMaxBytes },
) => {
  // Parts are read by the media route's own hook (streamed to disk), never buffered by the plugin.
  await app.register(fastifyMultipart, { limits: { fileSize: uploadMaxBytes, files: 1, fields: 32, parts: 33 } });
  const uploads = new WeakMap<FastifyRequest, UploadedFile>();
  const readUpload: preValidationAsyncHookHandler = async (request, reply) => {
    if (!request.isMultipart()) return;
    const { fields, file } = await receiveUpload(request, uploadDir, uploadMaxBytes, (path) => {
      // Removed once the answer is sent or the client went away, whatever happened in between.
      whenClosed(reply, () => void rm(path, { force: true }));
    });
    request.body = fields;
    if (file) uploads.set(request, file);
  };
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
    whenClosed(reply, release);
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
        summary: 'Send a text, a location or a contact card (200 when sent within SEND_WAIT_MS, else 202 and queued)',
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
      const data = await messaging.sendText(request.params.agentId, request.body, submitContext(request));
      return reply.code(sendStatus(data)).send({ data: sendResult(data), traceId: request.id });
    },
  );

  app.post(
    '/agents/:agentId/media',
    {
      onRequest: [onRequest, takeMediaPlace],
      preValidation: readUpload,
      bodyLimit: mediaBodyLimit,
      config: { multipartForm: sendMediaForm },
      schema: {
        tags,
        security,
        summary:
          'Send a file: an image, document, audio or voice note, video or sticker (the type is read from the bytes)',
        description:
          'JSON with the file as base64 (`data`, up to MEDIA_JSON_MAX_MB) or a `url`; or `multipart/form-data` with ' +
          'the same fields as form fields and the file as one file part (streamed to disk, up to the limit of its ' +
          'kind: images MEDIA_MAX_BYTES, audio MEDIA_MAX_AUDIO_MB, video MEDIA_MAX_VIDEO_MB, documents ' +
          'MEDIA_MAX_DOCUMENT_MB, stickers MEDIA_MAX_STICKER_MB). `type` says what to send (default image).',
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
      const data = await messaging.sendMedia(
        request.params.agentId,
        request.body,
        submitContext(request),
        uploads.get(request),
      );
      return reply
        .code(sendStatus(data))
        .send({ data: { ...sendResult(data), previewPath: data.previewPath ?? null }, traceId: request.id });
    },
  );

  const accepted = {
    200: envelope(sendResultSchema),
    202: envelope(sendResultSchema),
  };

  app.post(
    '/agents/:agentId/messages/:messageId/reaction',
    {
      onRequest,
      schema: {
        tags,
        security,
        summary: 'React to a message with an emoji ("" takes the reaction back), through the outbox',
        description:
          "`messageId` is our outbox id of a message the agent sent, or WhatsApp's id of one it sent or received " +
          '(one this service has no record of needs `chatId`). 409 MESSAGE_NOT_SENT while the message is queued.',
        params: reactionParams,
        headers: idempotencyHeaders,
        body: reactionBody,
        response: { ...accepted, ...errorResponses(400, 401, 403, 404, 409, 429) },
      },
    },
    async (request, reply) => {
      const data = await messaging.react(
        request.params.agentId,
        request.params.messageId,
        request.body,
        submitContext(request),
      );
      return reply.code(sendStatus(data)).send({ data: sendResult(data), traceId: request.id });
    },
  );

  app.post(
    '/agents/:agentId/chats/:chatId/read',
    {
      onRequest,
      schema: {
        tags,
        security,
        summary: "Mark the chat's received messages read (blue ticks), in order with the agent's sends",
        params: chatParams,
        headers: idempotencyHeaders,
        response: { ...accepted, ...errorResponses(400, 401, 403, 409, 429) },
      },
    },
    async (request, reply) => {
      const data = await messaging.markRead(request.params.agentId, request.params.chatId, submitContext(request));
      return reply.code(sendStatus(data)).send({ data: sendResult(data), traceId: request.id });
    },
  );

  app.post(
    '/agents/:agentId/chats/:chatId/typing',
    {
      onRequest,
      schema: {
        tags,
        security,
        summary: 'Show ("on": true) or clear the typing indicator in the chat, in order with the agent\'s sends',
        params: chatParams,
        headers: idempotencyHeaders,
        body: typingBody,
        response: { ...accepted, ...errorResponses(400, 401, 403, 409, 429) },
      },
    },
    async (request, reply) => {
      const data = await messaging.setTyping(
        request.params.agentId,
        request.params.chatId,
        request.body.on,
        submitContext(request),
      );
      return reply.code(sendStatus(data)).send({ data: sendResult(data), traceId: request.id });
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
/** What a send asks of the outbox besides its message: the request's Idempotency-Key and its trace id. */
function submitContext(request: { headers: { 'idempotency-key'?: string | undefined }; id: string }): SubmitContext {
  return { idempotencyKey: request.headers['idempotency-key'], traceId: request.id };
}

/** 200 once the message went out within SEND_WAIT_MS, 202 while it waits in the outbox. */
function sendStatus({ delivered }: SubmitResult): 200 | 202 {
  return delivered ? 200 : 202;
}

function sendResult({ delivered, messageId, status, waMessageId }: SubmitResult) {
  return { delivered, messageId, status, waMessageId };
}
