// What the AI flows (inbound pipeline, /run) need from sessions and from the outbox, as small ports.

import type { EngineIdentity, MediaDownload } from '../engines/engine.js';
import type { OutboxStatus } from '../outbox/outbox.js';

/** The agent's row, as far as calling its AI backend is concerned. */
export interface AgentAiSettings {
  apiKey: string | null;
  /** Overrides the default `${AI_BACKEND_URL}/agents/{agentId}/execute` when set. */
  endpointUrlRun: string | null;
}

/** A connected session, seen from the inbound pipeline. */
export interface AgentConnection {
  identity: EngineIdentity;
  /** Absent when the engine cannot show a typing indicator. */
  setTyping?(chatJid: string, typing: boolean): Promise<void>;
  /** The file of an inbound message; absent when the engine cannot download files. */
  downloadMedia?(messageId: string): Promise<MediaDownload>;
}

/** Implemented over the sessions service. */
export interface AgentDirectory {
  /** null when the agent does not exist (or was deleted). */
  aiSettings(agentId: string): Promise<AgentAiSettings | null>;
  /** null when the agent's WhatsApp session is not connected in this process. */
  connection(agentId: string): AgentConnection | null;
}

export interface ReplyOptions {
  quotedMessageId?: string | undefined;
  traceId: string;
}

/** Where the message stands when sendText resolves; the outbox sends what it queued later, in order. */
export interface ReplyReceipt {
  status: OutboxStatus;
}

/**
 * Implemented over the outbox (rate-limited, FIFO per agent). Resolves once the message is sent or, past the
 * outbox's bounded wait, queued; throws when it was not accepted (session not ready, queue full).
 */
export interface ReplySender {
  sendText(agentId: string, to: string, text: string, options: ReplyOptions): Promise<ReplyReceipt>;
}
