// /agents/{agentId}/chats and /agents/{agentId}/chats/{chatId}/messages: the stored messages of an agent, both
// directions, newest first, in keyset pages.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Auth } from '../auth/auth.hooks.js';
import { AppError } from '../errors.js';
import { agentParams, envelope, errorResponses } from '../http/schemas.js';
import { normalizeRecipient } from '../whatsapp/jid.js';
import { decodeChatCursor, decodeMessageCursor, type HistoryRepository } from './history.repository.js';
import { chatListSchema, chatMessagesSchema, chatParams, pageQuery } from './history.schemas.js';

export interface HistoryRoutesOptions {
  history: HistoryRepository;
  auth: Auth;
  defaultCountryCode: string;
}

/** Chats that are not people or groups keep their JID as it is. */
const SPECIAL_CHAT = /^[\w.-]{1,128}@(broadcast|newsletter)$/;

const badCursor = () => new AppError('INVALID_PAYLOAD', 'cursor is not a cursor this endpoint returned');

export const historyRoutes: FastifyPluginAsyncZod<HistoryRoutesOptions> = async (app, options) => {
  const { history, auth, defaultCountryCode } = options;
  const tags = ['chats'];
  const security = [{ bearerAuth: [] }];
  const onRequest = auth.agent();
  const requireAgent = async (agentId: string) => {
    if (!(await history.agentExists(agentId))) throw new AppError('SESSION_NOT_FOUND');
  };

  app.get(
    '/agents/:agentId/chats',
    {
      onRequest,
      schema: {
        tags,
        security,
        summary: "The agent's chats, the one with the latest message first (messages kept MESSAGE_RETENTION_DAYS)",
        params: agentParams,
        querystring: pageQuery,
        response: { 200: envelope(chatListSchema), ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const { agentId } = request.params;
      const { limit, cursor } = request.query;
      const after = cursor === undefined ? null : decodeChatCursor(cursor);
      if (after === null && cursor !== undefined) throw badCursor();
      await requireAgent(agentId);
      return { data: await history.chats(agentId, { limit, after }), traceId: request.id };
    },
  );

  app.get(
    '/agents/:agentId/chats/:chatId/messages',
    {
      onRequest,
      schema: {
        tags,
        security,
        summary: 'The messages of a chat, received and sent, newest first',
        params: chatParams,
        querystring: pageQuery,
        response: { 200: envelope(chatMessagesSchema), ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const { agentId, chatId: raw } = request.params;
      const { limit, cursor } = request.query;
      const chatId = SPECIAL_CHAT.test(raw) ? raw : normalizeRecipient(raw, defaultCountryCode, 'chatId');
      const after = cursor === undefined ? null : decodeMessageCursor(cursor);
      if (after === null && cursor !== undefined) throw badCursor();
      await requireAgent(agentId);
      return { data: await history.chatMessages(agentId, chatId, { limit, after }), traceId: request.id };
    },
  );
};
