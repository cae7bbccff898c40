// Drizzle table definitions. The SQL that creates them lives in migrations/ (one schema for PostgreSQL and PGlite).
import { boolean, jsonb, pgTable, primaryKey, text, timestamp } from 'drizzle-orm/pg-core';

const tz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

const SESSION_STATUSES = ['awaiting_qr', 'connected', 'disconnected', 'auth_failed'] as const;
export type SessionStatusValue = (typeof SESSION_STATUSES)[number];

/** Owned by this service. The original service created it with a composite key (user_id, agent_id). */
export const whatsappUser = pgTable(
  'whatsapp_user',
  {
    userId: text('user_id').notNull(),
    agentId: text('agent_id').notNull(),
    agentName: text('agent_name'),
    apiKey: text('api_key'),
    endpointUrlRun: text('endpoint_url_run'),
    status: text('status').notNull().default('awaiting_qr'),
    lastConnectedAt: tz('last_connected_at'),
    lastDisconnectedAt: tz('last_disconnected_at'),
    createdAt: tz('created_at').notNull().defaultNow(),
    updatedAt: tz('updated_at').notNull().defaultNow(),
    engine: text('engine'),
    waJid: text('wa_jid'),
    lastError: text('last_error'),
    /** 'api_keys' or 'admin' (see migration 0003); NULL on rows from before it until the key sync derives it. */
    apiKeySource: text('api_key_source'),
    /** The pacing setting (src/pacing/, migration 0013): "human" or a profile object; NULL is off. */
    pacing: jsonb('pacing'),
  },
  (t) => [primaryKey({ columns: [t.userId, t.agentId] })],
);

/** Shared with other services and managed elsewhere: only read here. */
export const apiKeys = pgTable('api_keys', {
  userId: text('user_id').notNull(),
  accessToken: text('access_token').notNull(),
  isActive: boolean('is_active').notNull(),
  updatedAt: tz('updated_at'),
});

/**
 * Every inbound message of a connected agent, and the dedup claim of those sent to the AI, so a redelivery (also after
 * a restart) is not answered twice. The message's own columns (migration 0007) are written and read in raw SQL only
 * (inbound.repository.ts, history.repository.ts), so they are not declared here.
 */
export const inboundMessages = pgTable(
  'inbound_messages',
  {
    agentId: text('agent_id').notNull(),
    waMessageId: text('wa_message_id').notNull(),
    chatJid: text('chat_jid').notNull(),
    outcome: text('outcome'),
    receivedAt: tz('received_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.agentId, t.waMessageId] })],
);

/** Baileys auth state: creds and signal keys, one row per key. */
export const baileysAuth = pgTable(
  'baileys_auth',
  {
    agentId: text('agent_id').notNull(),
    key: text('key').notNull(),
    value: text('value').notNull(),
    updatedAt: tz('updated_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.agentId, t.key] })],
);

export const schema = { whatsappUser, apiKeys, inboundMessages, baileysAuth };
