// Reads the message store for the chat history: received messages (inbound_messages) and those the agent sent through
// this API (outbox_messages), merged by time. Pages are keyset pages: a cursor names the last row served.
import type { Database, Row } from '../db/client.js';
import { isText } from '../http/schemas.js';
import type { AiHistoryEntry, ChatHistoryReader } from '../inbound/inbound.service.js';
import type { OutboxStatus } from '../outbox/outbox.js';
import type { ChatSummary, HistoryItem, MessageType } from './history.schemas.js';
import { MESSAGE_TYPES } from './history.schemas.js';

/** Where a page starts: after the row with this time (microseconds since the epoch, as text), source and id. */
export interface MessageCursor {
  atUs: string;
  /** i: inbound_messages, o: outbox_messages. Sorts the rows of the same microsecond, with the id. */
  source: 'i' | 'o';
  id: string;
}

/** Where a page of chats starts: after the chat with this last-message time and id. */
export interface ChatCursor {
  atUs: string;
  chatId: string;
}

const PREVIEW_LENGTH = 200;

/** A row's time, exact to the microsecond, for cursors: a JavaScript Date would round it to the millisecond. */
const micros = (column: string) => `(extract(epoch FROM ${column}) * 1000000)::bigint::text`;
/** A cursor's time back into a timestamptz, exactly. */
const fromMicros = (param: string) => `('epoch'::timestamptz + ${param}::bigint * interval '1 microsecond')`;

/**
 * A message the account sent through this API comes back from some engines as an inbound message of its own (fromMe):
 * the outbox row stands for it, so it is not shown twice.
 */
const NOT_AN_ECHO = `NOT (m.from_me IS TRUE AND EXISTS (
  SELECT 1 FROM outbox_messages e WHERE e.agent_id = m.agent_id AND e.wa_message_id = m.wa_message_id))`;

/** A sent row's receipts (each one's first time, and WhatsApp's error) and its send's error. */
const RECEIPTS = `o.server_at AS r_server, o.delivered_at AS r_delivered, o.read_at AS r_read, o.played_at AS r_played,
  o.ack_error AS r_error, o.ack_error_at AS r_error_at, o.error`;
/** RECEIPTS' columns for a received row, which has none. */
const NO_RECEIPTS = `NULL::timestamptz AS r_server, NULL::timestamptz AS r_delivered, NULL::timestamptz AS r_read,
  NULL::timestamptz AS r_played, NULL::text AS r_error, NULL::timestamptz AS r_error_at, NULL::text AS error`;

const INBOUND_ITEM = `'i'::text AS src, m.wa_message_id AS id, m.wa_message_id AS wa_id,
  CASE WHEN m.from_me THEN 'out' ELSE 'in' END AS direction, m.sender_jid AS sender, m.type, m.text,
  m.quoted_message_id AS quoted, m.media, NULL::text AS status, m.received_at AS at, ${NO_RECEIPTS}`;
const OUTBOX_ITEM = `'o'::text AS src, o.id, o.wa_message_id AS wa_id, 'out' AS direction,
  o.payload->>'account' AS sender, o.kind AS type,
  COALESCE(o.payload->>'text', o.payload->'contact'->>'displayName', o.payload->'location'->>'name') AS text,
  o.payload->>'quotedMessageId' AS quoted,
  CASE WHEN o.kind IN ('image', 'document', 'audio', 'video', 'sticker') THEN jsonb_build_object(
    'mimeType', o.payload->>'mimeType', 'size', (o.payload->>'size')::bigint, 'filename', o.payload->>'filename') END
    AS media,
  o.status, o.created_at AS at, ${RECEIPTS}, o.payload->>'caption' AS caption`;

/** Outbox rows that are no message of their own (a reaction, a read mark, typing): not in a chat's history. */
const OUTBOX_MESSAGE = `o.kind NOT IN ('reaction', 'read', 'typing')`;

export const encodeCursor = (parts: readonly string[]): string =>
  Buffer.from(JSON.stringify(parts), 'utf8').toString('base64url');

/** The parts of a cursor this service made, or null for anything else. */
export function decodeCursor(cursor: string, length: number): string[] | null {
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) return null;
  let parts: unknown;
  try {
    parts = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
  if (!Array.isArray(parts) || parts.length !== length) return null;
  // Text the database can take; a time within the years a timestamptz can hold (16 digits: until 2286).
  if (!parts.every((part): part is string => typeof part === 'string' && isText(part))) return null;
  if (!/^\d{1,16}$/.test(parts[0] ?? '')) return null;
  return parts;
}

export function decodeMessageCursor(cursor: string): MessageCursor | null {
  const parts = decodeCursor(cursor, 3);
  if (!parts) return null;
  const [atUs = '', source, id = ''] = parts;
  return source === 'i' || source === 'o' ? { atUs, source, id } : null;
}

export function decodeChatCursor(cursor: string): ChatCursor | null {
  const parts = decodeCursor(cursor, 2);
  return parts ? { atUs: parts[0] ?? '', chatId: parts[1] ?? '' } : null;
}

/** Rows stored before the message store (migration 0007) have no type: `other`. */
const toType = (value: unknown): MessageType => MESSAGE_TYPES.find((type) => type === value) ?? 'other';
const str = (value: unknown): string | null => (typeof value === 'string' ? value : null);
const iso = (atUs: unknown): string => new Date(Math.floor(Number(atUs) / 1000)).toISOString();

function toMedia(value: unknown): HistoryItem['media'] {
  if (!value || typeof value !== 'object') return null;
  const media = value as Record<string, unknown>;
  return {
    mimeType: str(media.mimeType),
    size: typeof media.size === 'number' ? media.size : null,
    filename: str(media.filename),
  };
}

function toItem(row: Row, chatId: string): HistoryItem {
  const type = toType(row.type);
  // Inbound rows keep one text: the text of a text message, the caption of a media message.
  const inboundText = row.src === 'i' ? (str(row.text) ?? '') : null;
  return {
    id: String(row.id),
    waMessageId: str(row.wa_id),
    direction: row.direction === 'out' ? 'out' : 'in',
    chatId,
    from: str(row.sender),
    type,
    text: row.src === 'i' ? (type === 'text' ? inboundText : null) : str(row.text),
    caption: row.src === 'i' ? (type === 'text' ? null : inboundText || null) : str(row.caption),
    quotedMessageId: str(row.quoted),
    media: toMedia(row.media),
    timestamp: iso(row.at_us),
    status: row.src === 'o' ? (String(row.status) as OutboxStatus) : null,
    receipts:
      row.src === 'o'
        ? {
            server: isoOrNull(row.r_server),
            delivered: isoOrNull(row.r_delivered),
            read: isoOrNull(row.r_read),
            played: isoOrNull(row.r_played),
            error: str(row.r_error),
            errorAt: isoOrNull(row.r_error_at),
          }
        : null,
    error: row.src === 'o' ? str(row.error) : null,
  };
}

const isoOrNull = (value: unknown): string | null => (value == null ? null : toDate(value).toISOString());

export class HistoryRepository implements ChatHistoryReader {
  constructor(private readonly database: Database) {}

  /** Whether the agent exists: its history is served only then (404 otherwise, also for the admin). */
  async agentExists(agentId: string): Promise<boolean> {
    const rows = await this.database.query('SELECT 1 FROM whatsapp_user WHERE agent_id = $1', [agentId]);
    return rows.length > 0;
  }

  /** A page of the chat's messages, both directions, newest first; `limit + 1` rows read to know if more follow. */
  async chatMessages(
    agentId: string,
    chatId: string,
    { limit, after }: { limit: number; after: MessageCursor | null },
  ): Promise<{ items: HistoryItem[]; nextCursor: string | null }> {
    // Each side is read through its (agent, chat, time) index from the cursor's time down, at most limit + 1 rows,
    // then the two are merged. (The plain bound on the time is what the index can start from.)
    const rows = await this.database.query(
      `SELECT src, id, wa_id, direction, sender, type, text, caption, quoted, media, status, ${micros('at')} AS at_us,
         r_server, r_delivered, r_read, r_played, r_error, r_error_at, error
       FROM (
         (SELECT ${INBOUND_ITEM}, NULL::text AS caption FROM inbound_messages m
          WHERE m.agent_id = $1 AND m.chat_jid = $2
            AND ($3::text IS NULL OR (m.received_at <= ${fromMicros('$3')}
              AND (m.received_at, 'i'::text, m.wa_message_id) < (${fromMicros('$3')}, $4, $5)))
            AND ${NOT_AN_ECHO}
          ORDER BY m.received_at DESC, m.wa_message_id DESC LIMIT $6)
         UNION ALL
         (SELECT ${OUTBOX_ITEM} FROM outbox_messages o
          WHERE o.agent_id = $1 AND o.to_jid = $2 AND ${OUTBOX_MESSAGE}
            AND ($3::text IS NULL OR (o.created_at <= ${fromMicros('$3')}
              AND (o.created_at, 'o'::text, o.id) < (${fromMicros('$3')}, $4, $5)))
          ORDER BY o.created_at DESC, o.id DESC LIMIT $6)
       ) t
       ORDER BY at DESC, src DESC, id DESC LIMIT $6`,
      [agentId, chatId, after?.atUs ?? null, after?.source ?? null, after?.id ?? null, limit + 1],
    );
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      items: page.map((row) => toItem(row, chatId)),
      nextCursor:
        rows.length > limit && last ? encodeCursor([String(last.at_us), String(last.src), String(last.id)]) : null,
    };
  }

  /** A page of the agent's chats, the one with the latest message first. */
  async chats(
    agentId: string,
    { limit, after }: { limit: number; after: ChatCursor | null },
  ): Promise<{ items: ChatSummary[]; nextCursor: string | null }> {
    const rows = await this.database.query(
      `WITH messages AS (
         SELECT m.chat_jid AS chat, m.received_at AS at, 'i'::text AS src, m.wa_message_id AS id,
           CASE WHEN m.from_me THEN 'out' ELSE 'in' END AS direction, m.type, m.text, m.chat_name
         FROM inbound_messages m WHERE m.agent_id = $1 AND ${NOT_AN_ECHO}
         UNION ALL
         SELECT o.to_jid, o.created_at, 'o'::text, o.id, 'out', o.kind,
           COALESCE(o.payload->>'text', o.payload->>'caption'), NULL
         FROM outbox_messages o WHERE o.agent_id = $1 AND ${OUTBOX_MESSAGE}
       ),
       latest AS (
         SELECT DISTINCT ON (chat) chat, at, direction, type, text FROM messages ORDER BY chat, at DESC, src DESC, id DESC
       ),
       totals AS (
         SELECT chat, count(*) FILTER (WHERE direction = 'in')::int AS n_in,
           count(*) FILTER (WHERE direction = 'out')::int AS n_out,
           (array_agg(chat_name ORDER BY at DESC) FILTER (WHERE chat_name IS NOT NULL))[1] AS chat_name
         FROM messages GROUP BY chat
       )
       SELECT l.chat, l.direction, l.type, l.text, t.n_in, t.n_out, t.chat_name, ${micros('l.at')} AS at_us
       FROM latest l JOIN totals t USING (chat)
       WHERE $2::text IS NULL OR (l.at, l.chat) < (${fromMicros('$2')}, $3)
       ORDER BY l.at DESC, l.chat DESC LIMIT $4`,
      [agentId, after?.atUs ?? null, after?.chatId ?? null, limit + 1],
    );
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      items: page.map((row) => {
        const chatId = String(row.chat);
        return {
          chatId,
          chatName: str(row.chat_name),
          isGroup: chatId.endsWith('@g.us'),
          lastMessageAt: iso(row.at_us),
          lastMessage: {
            direction: row.direction === 'out' ? 'out' : 'in',
            type: toType(row.type),
            preview: (str(row.text) ?? '').slice(0, PREVIEW_LENGTH),
          },
          counts: { in: Number(row.n_in), out: Number(row.n_out) },
        };
      }),
      nextCursor: rows.length > limit && last ? encodeCursor([String(last.at_us), String(last.chat)]) : null,
    };
  }

  /** The chat's last `limit` messages before `before` (but `excludeId`), oldest first, in one indexed query. */
  async recentForAi(
    agentId: string,
    chatJid: string,
    { excludeId, before, limit }: { excludeId: string; before: Date; limit: number },
  ): Promise<AiHistoryEntry[]> {
    const rows = await this.database.query(
      `SELECT direction, text, at, src, id FROM (
         (SELECT CASE WHEN m.from_me THEN 'out' ELSE 'in' END AS direction, COALESCE(m.text, '') AS text,
            m.received_at AS at, 'i'::text AS src, m.wa_message_id AS id
          FROM inbound_messages m
          WHERE m.agent_id = $1 AND m.chat_jid = $2 AND m.received_at <= $3 AND m.wa_message_id <> $4
            AND ${NOT_AN_ECHO}
          ORDER BY m.received_at DESC, m.wa_message_id DESC LIMIT $5)
         UNION ALL
         (SELECT 'out', COALESCE(o.payload->>'text', o.payload->>'caption', ''), o.created_at, 'o'::text, o.id
          FROM outbox_messages o
          WHERE o.agent_id = $1 AND o.to_jid = $2 AND o.created_at <= $3 AND o.status <> 'failed' AND ${OUTBOX_MESSAGE}
          ORDER BY o.created_at DESC, o.id DESC LIMIT $5)
       ) t
       ORDER BY at DESC, src DESC, id DESC LIMIT $5`,
      [agentId, chatJid, before.toISOString(), excludeId, limit],
      'history_for_ai',
    );
    return rows.reverse().map((row) => ({
      direction: row.direction === 'out' ? 'out' : 'in',
      text: String(row.text),
      timestamp: toDate(row.at).toISOString(),
    }));
  }
}

function toDate(value: unknown): Date {
  return value instanceof Date ? value : new Date(String(value));
}
