// What the AI flows (inbound pipeline, /run) need from sessions and from the outbox, as small ports.
import type { EngineIdentity } from '../engines/engine.js';

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

/** Implemented over the outbox: resolves once the message is accepted (rate-limited, sent in order). */
export interface ReplySender {
  sendText(agentId: string, to: string, text: string, options: ReplyOptions): Promise<void>;
}
