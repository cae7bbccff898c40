// The sandbox control surface over HTTP: play the phone (scan), the contacts (inbound, receipts) and the network.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Auth } from '../auth/auth.hooks.js';
import { type Forwarder, toOwner } from '../cluster/forward.js';
import { ACK_STATUSES } from '../engines/engine.js';
import { SANDBOX_SENT_KINDS, type SandboxEngine, SandboxStateError } from '../engines/sandbox/sandbox.engine.js';
import { AppError } from '../errors.js';
import { mediaBodyLimit } from '../http/body-limits.js';
import { agentParams, envelope, errorResponses, optionalBody, text } from '../http/schemas.js';
import { normalizeRecipient, phoneDigits } from '../whatsapp/jid.js';

export interface SandboxRoutesOptions {
  sandbox: SandboxEngine;
  auth: Auth;
  defaultCountryCode: string;
  /** Resolves once the service has recorded what the control action caused (status rows, queues). */
  settled: (agentId: string) => Promise<void>;
  /** Each agent's sandbox session lives in the process that runs it: its controls are sent there. */
  forwarder: Forwarder;
}

const INBOUND_TYPES = ['text', 'image', 'video', 'audio', 'document', 'sticker', 'location', 'other'] as const;
/** Chats that are not people or groups; the sandbox delivers them as they are so the filter can be tested. */
const SPECIAL_CHAT = /^[\w.-]+@(broadcast|newsletter)$/;

/** An inbound file's bytes in base64: up to 32 MiB, far above what a test or demo sends. */
const SANDBOX_FILE_MAX_BYTES = 32 * 1024 * 1024;
const BASE64 = /^[A-Za-z0-9+/\r\n]*={0,2}\s*$/;

const inboundBody = z
  .object({
    from: text()
      .min(1)
      .describe('The sender: a phone number, `<digits>@c.us`, or a LID `<id>@lid` (WhatsApp hiding the number)'),
    phone: text()
      .optional()
      .describe(
        'With a `from` of the form `<id>@lid`: the phone number the sandbox knows for that LID, reported with it as real engines do',
      ),
    text: text().default(''),
    chat: text().min(1).optional(),
    isGroup: z.boolean().optional(),
    mentions: z.array(text()).default([]),
    pushName: text().optional(),
    chatName: text().optional(),
    type: z.enum(INBOUND_TYPES).default('text'),
    id: text().min(1).max(128).optional(),
    fromMe: z.boolean().default(false),
    quotedMessageId: text().min(1).max(256).optional(),
    media: z
      .object({
        data: z
          .string()
          .max(Math.ceil(SANDBOX_FILE_MAX_BYTES / 3) * 4 + 1024)
          .refine((value) => BASE64.test(value.replace(/^data:[^,]*,/, '')), 'must be base64')
          .optional()
          .describe('The file in base64 (a data: URI prefix is allowed); without it a download of the message fails'),
        mimeType: text().max(255).optional(),
        size: z.number().int().min(0).optional().describe('Defaults to the length of `data`'),
        filename: text().max(255).optional(),
        durationSeconds: z.number().min(0).optional().describe('Voice notes, audio and video'),
      })
      .optional()
      .describe('The attachment of an image, audio, video, document or sticker message: its bytes and metadata'),
    location: z
      .object({
        latitude: z.number().min(-90).max(90),
        longitude: z.number().min(-180).max(180),
        name: text().max(1_024).optional(),
        address: text().max(1_024).optional(),
      })
      .optional()
      .describe('With `type` location: where it points'),
  })
  .meta({
    example: {
      from: '123456789012345@lid',
      phone: '6281234567890',
      pushName: 'Budi',
      type: 'audio',
      media: { data: 'T2dnUwACAAAAAAAAAAA=', mimeType: 'audio/ogg; codecs=opus', durationSeconds: 4 },
    },
  });

/** The file's bytes from `media.data`: base64, optionally behind a data: URI prefix. */
function fileBytes(data: string | undefined): Buffer | undefined {
  if (data === undefined) return undefined;
  return Buffer.from(data.replace(/^data:[^,]*,/, ''), 'base64');
}

const sentEntry = z
  .object({
    messageId: z.string().describe("WhatsApp's id of what was sent (a read mark or typing has one in the log only)"),
    to: z.string().describe('The chat, canonical JID'),
    kind: z.enum(SANDBOX_SENT_KINDS),
    text: z.string().optional().describe('text: the message'),
    caption: z.string().optional().describe('image, video, document: the caption'),
    mimeType: z.string().optional().describe('Files: the type read from the bytes'),
    bytes: z.number().optional().describe("Files: the file's size"),
    sha256: z.string().optional().describe("Files: SHA-256 of the file's bytes, hex"),
    filename: z.string().optional().describe('document: the file name the recipient sees'),
    voice: z.boolean().optional().describe('audio: sent as a voice note'),
    latitude: z.number().optional().describe('location'),
    longitude: z.number().optional().describe('location'),
    name: z.string().optional().describe("location: the place's name"),
    address: z.string().optional().describe("location: the place's address"),
    vcard: z.string().optional().describe('contact: the vCard'),
    displayName: z.string().optional().describe('contact: the name on the card'),
    emoji: z.string().optional().describe('reaction: the emoji ("" takes a reaction back)'),
    targetMessageId: z.string().optional().describe("reaction: WhatsApp's id of the message reacted to"),
    quotedMessageId: z.string().optional(),
    mentions: z.array(z.string()).optional(),
    typing: z.boolean().optional().describe('typing: on or off'),
    chat: z
      .string()
      .describe("The chat the message reached: `to`, or for a LID whose number the sandbox knows, that number's chat"),
    at: z.string(),
  })
  .meta({
    example: {
      messageId: 'true_6281100000000@c.us_SBX1A2B3C4D00000001',
      to: '6281234567890@c.us',
      chat: '6281234567890@c.us',
      kind: 'document',
      mimeType: 'application/pdf',
      bytes: 48213,
      sha256: '9f2c4e0d5b1a7c3e8f6d2b4a0c9e7f1d3b5a8c6e4f2d0b9a7c5e3f1d8b6a4c2e',
      filename: 'invoice-2026-11.pdf',
      caption: 'Your invoice',
      at: '2026-11-29T18:00:00.000Z',
    },
  });

export const sandboxRoutes: FastifyPluginAsyncZod<SandboxRoutesOptions> = async (app, options) => {
  const { sandbox, auth, defaultCountryCode, settled } = options;
  const onRequest = auth.admin();
  const preHandler = toOwner(options.forwarder);
  const tags = ['sandbox'];
  const security = [{ bearerAuth: [] }];
  const jid = (value: string, field: string) =>
    SPECIAL_CHAT.test(value) ? value : normalizeRecipient(value, defaultCountryCode, field);
  const control = async <T>(agentId: string, action: () => T | Promise<T>): Promise<T> => {
    try {
      const result = await action();
      await settled(agentId);
      return result;
    } catch (err) {
      if (err instanceof SandboxStateError) throw new AppError('SESSION_NOT_READY', `sandbox: ${err.message}`);
      throw err;
    }
  };

  app.post(
    '/sandbox/agents/:agentId/scan',
    {
      onRequest,
      preHandler,
      schema: {
        tags,
        security,
        summary: 'Act as a phone scanning the current QR code',
        params: agentParams,
        body: optionalBody(z.object({ phone: text().optional() })),
        response: { 200: envelope(z.object({ me: z.string() })), ...errorResponses(400, 401, 409) },
      },
    },
    async (request) => {
      const { agentId } = request.params;
      const raw = request.body.phone;
      const phone = raw === undefined ? undefined : phoneDigits(raw, defaultCountryCode);
      if (phone === null) throw new AppError('INVALID_RECIPIENT', 'phone must be a phone number');
      await control(agentId, () => sandbox.scan(agentId, phone));
      return { data: { me: `${(await sandbox.readLogin(agentId))?.phone}@c.us` }, traceId: request.id };
    },
  );

  app.post(
    '/sandbox/agents/:agentId/inbound',
    {
      onRequest,
      preHandler,
      bodyLimit: mediaBodyLimit(SANDBOX_FILE_MAX_BYTES),
      schema: {
        tags,
        security,
        summary: 'Deliver a message to the agent as a real engine would',
        params: agentParams,
        body: inboundBody,
        response: { 200: envelope(z.object({ messageId: z.string() })), ...errorResponses(400, 401, 409) },
      },
    },
    async (request) => {
      const { agentId } = request.params;
      const body = request.body;
      const senderJid = jid(body.from, 'from');
      const chatJid = body.chat ? jid(body.chat, 'chat') : senderJid;
      const senderPhoneJid = body.phone === undefined ? null : lidPhone(senderJid, body.phone, defaultCountryCode);
      const file = fileBytes(body.media?.data);
      const messageId = await control(agentId, () =>
        sandbox.deliver(
          agentId,
          {
            ...(body.id ? { id: body.id } : {}),
            chatJid,
            senderJid,
            text: body.text,
            type: body.type,
            isGroup: body.isGroup ?? chatJid.endsWith('@g.us'),
            mentions: body.mentions.map((m) => jid(m, 'mentions')),
            fromMe: body.fromMe,
            timestamp: Date.now(),
            pushName: body.pushName ?? null,
            chatName: body.chatName ?? null,
            quotedMessageId: body.quotedMessageId ?? null,
            media: body.media
              ? {
                  mimeType: body.media.mimeType ?? null,
                  size: body.media.size ?? file?.length ?? null,
                  filename: body.media.filename ?? null,
                  durationSeconds: body.media.durationSeconds ?? null,
                }
              : null,
            location: body.location
              ? {
                  latitude: body.location.latitude,
                  longitude: body.location.longitude,
                  name: body.location.name ?? null,
                  address: body.location.address ?? null,
                }
              : null,
            ...(senderPhoneJid ? { senderPhoneJid, senderLid: senderJid } : {}),
          },
          file,
        ),
      );
      return { data: { messageId }, traceId: request.id };
    },
  );

  app.get(
    '/sandbox/agents/:agentId/sent',
    {
      onRequest,
      preHandler,
      schema: {
        tags,
        security,
        summary: 'What the agent sent, oldest first',
        params: agentParams,
        response: { 200: envelope(z.array(sentEntry)), ...errorResponses(400, 401) },
      },
    },
    async (request) => ({ data: sandbox.sent(request.params.agentId), traceId: request.id }),
  );

  app.post(
    '/sandbox/agents/:agentId/disconnect',
    {
      onRequest,
      preHandler,
      schema: {
        tags,
        security,
        summary: 'Drop the connection as the network (or, with loggedOut, the phone) would',
        params: agentParams,
        body: optionalBody(z.object({ loggedOut: z.boolean().default(false) })),
        response: { 200: envelope(z.object({ disconnected: z.boolean() })), ...errorResponses(400, 401, 409) },
      },
    },
    async (request) => {
      const { agentId } = request.params;
      await control(agentId, () => sandbox.disconnect(agentId, request.body.loggedOut));
      return { data: { disconnected: true }, traceId: request.id };
    },
  );

  app.post(
    '/sandbox/agents/:agentId/ack',
    {
      onRequest,
      preHandler,
      schema: {
        tags,
        security,
        summary:
          "Report WhatsApp's receipt for a message the agent sent, as a real engine would: its server took it (`server`), the recipient's phone got it (`delivered`), read it (`read`), played it (`played`), or it failed (`error`)",
        params: agentParams,
        body: z
          .object({
            waMessageId: text().min(1).max(256).describe("WhatsApp's id of the message, as the send answered it"),
            status: z.enum(ACK_STATUSES),
            error: text().max(1_024).optional().describe('With `error`: what went wrong'),
          })
          .meta({ example: { waMessageId: 'true_6281100000000@c.us_SBX9F2C00000001', status: 'read' } }),
        response: {
          200: envelope(z.object({ waMessageId: z.string(), status: z.enum(ACK_STATUSES) })),
          ...errorResponses(400, 401, 404, 409),
        },
      },
    },
    async (request) => {
      const { agentId } = request.params;
      const { waMessageId, status, error } = request.body;
      const known = await control(agentId, () => sandbox.ack(agentId, waMessageId, status, error));
      if (!known) throw new AppError('MESSAGE_NOT_FOUND', 'sandbox: the agent sent no message with this waMessageId');
      return { data: { waMessageId, status }, traceId: request.id };
    },
  );

  app.post(
    '/sandbox/agents/:agentId/fail-sends',
    {
      onRequest,
      preHandler,
      schema: {
        tags,
        security,
        summary:
          'Make the next `count` sends of this agent fail: as a flaky network would (reason `network`, retried), or as WhatsApp refusing the recipient would (`not_on_whatsapp`, `blocked`: failed at once)',
        params: agentParams,
        body: z.object({
          count: z.number().int().min(0).max(10_000),
          reason: z.enum(['network', 'not_on_whatsapp', 'blocked']).default('network'),
        }),
        response: { 200: envelope(z.object({ count: z.number() })), ...errorResponses(400, 401, 409) },
      },
    },
    async (request) => {
      const { agentId } = request.params;
      await control(agentId, () => sandbox.failSends(agentId, request.body.count, request.body.reason));
      return { data: { count: request.body.count }, traceId: request.id };
    },
  );
};

/** The phone JID given for a LID sender; `phone` goes only with a `from` of the form `<id>@lid`. */
function lidPhone(senderJid: string, phone: string, defaultCountryCode: string): string {
  if (!senderJid.endsWith('@lid')) {
    throw new AppError('INVALID_PAYLOAD', 'body.phone: phone goes with a from of the form <id>@lid');
  }
  const digits = phoneDigits(phone, defaultCountryCode);
  if (digits === null) throw new AppError('INVALID_RECIPIENT', 'phone must be a phone number (8 to 15 digits)');
  return `${digits}@c.us`;
}
