// POST /agents/{agentId}/run: asks the agent's AI backend directly and sends its reply to the chat.
import { AppError, errorMessage } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { jidKind, normalizeRecipient } from '../whatsapp/jid.js';
import type { AgentDirectory, ReplySender } from './agent-ports.js';
import type { AiCaller } from './ai-client.js';
import type { RunBody, RunResult } from './run.schemas.js';

const RUN_DEFAULT_PARAMETERS = { max_steps: 5 };

export interface RunServiceOptions {
  directory: Pick<AgentDirectory, 'aiSettings'>;
  ai: AiCaller;
  replies: ReplySender;
  defaultCountryCode: string;
  logger: Logger;
}

export class RunService {
  constructor(private readonly options: RunServiceOptions) {}

  async run(agentId: string, body: RunBody, traceId: string): Promise<RunResult> {
    const { directory, ai, replies, defaultCountryCode } = this.options;
    const logger = this.options.logger.child({ agentId, traceId });
    const { input, message, session_id, sessionId, parameters, metadata, ...passThrough } = body;
    const rawSessionId = String(session_id ?? sessionId);
    // Checked before the AI is asked, so a typo does not cost an AI call whose answer cannot be delivered.
    const chatJid = normalizeRecipient(rawSessionId, defaultCountryCode, 'session_id');
    const settings = await directory.aiSettings(agentId);
    if (!settings) throw new AppError('SESSION_NOT_FOUND');

    const { reply } = await ai.execute({
      agentId,
      apiKey: settings.apiKey,
      endpointUrlRun: settings.endpointUrlRun,
      traceId,
      input: input ?? message ?? '',
      parameters: parameters ?? RUN_DEFAULT_PARAMETERS,
      // The caller's own session id goes to the AI as written: it keys the AI's memory.
      sessionId: rawSessionId,
      metadata:
        metadata !== undefined
          ? metadata
          : {
              whatsapp_name: null,
              chat_name: null,
              chat_jid: chatJid,
              sender_jid: null,
              message_id: null,
              is_group: jidKind(chatJid) === 'group',
              agent_id: agentId,
            },
      passThrough,
    });
    if (reply === null) {
      logger.info({ event: 'run.no_reply' });
      return { reply, replySent: false };
    }
    try {
      const receipt = await replies.sendText(agentId, chatJid, reply, { traceId });
      if (receipt.status === 'failed') {
        logger.warn({ event: 'run.reply_failed' });
        return { reply, replySent: false };
      }
    } catch (err) {
      // The caller still gets the AI's answer; replySent tells it WhatsApp did not take it (not connected, queue full).
      logger.warn({ event: 'run.reply_not_sent', err: errorMessage(err) });
      return { reply, replySent: false };
    }
    logger.info({ event: 'run.replied' });
    return { reply, replySent: true };
  }
}
