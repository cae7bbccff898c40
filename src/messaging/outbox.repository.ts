// The outbox table: every message an agent sends is a row, queued → sending → sent | failed.
import type { Database, Row } from '../db/client.js';
import type { OutboxStatus } from '../db/schema.js';

export type OutboxKind = 'text' | 'image';

/** What the engine needs to send the message again after a restart, minus the image bytes (kept in `media`). */
export interface OutboxPayload {
  text?: string;
  caption?: string;
  filename?: string;
  mimeType?: string;
  quotedMessageId?: string;
  mentions?: string[];
  previewPath?: string;
  /** A hash of the request, so that a retry can be told from a reused Idempotency-Key. */
  fingerprint: string;
}

export interface NewOutboxMessage {
  id: string;
  agentId: string;
  kind: OutboxKind;
  toJid: string;
  payload: OutboxPayload;
  media: Buffer | null;
  idempotencyKey: string | null;
  traceId: string | null;
}

/** A row without its media bytes, which only the dispatcher reads, once, when it claims the row. */
export interface OutboxRecord {
  id: string;
  seq: number;
  agentId: string;
  kind: OutboxKind;
  toJid: string;
  payload: OutboxPayload;
  status: OutboxStatus;
  attempts: number;
  waMessageId: string | null;
  error: string | null;
  traceId: string | null;
  createdAt: Date;
  updatedAt: Date;
  sentAt: Date | null;
}

export interface ClaimedRow {
  attempts: number;
  media: Buffer | null;
}

const COLUMNS = `id, seq, agent_id, kind, to_jid, payload, status, attempts, wa_message_id, error, trace_id,
  created_at, updated_at, sent_at`;

export class OutboxRepository {
  constructor(private readonly database: Database) {}

  /** Inserts the row; returns null when the agent already used this idempotency key. */
  async insert(message: NewOutboxMessage): Promise<OutboxRecord | null> {
    const rows = await this.database.query(
      `INSERT INTO outbox_messages (id, agent_id, kind, to_jid, payload, media, idempotency_key, trace_id)
       VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8)
       ON CONFLICT (agent_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
       RETURNING ${COLUMNS}`,
      [
        message.id,
        message.agentId,
        message.kind,
        message.toJid,
        JSON.stringify(message.payload),
        message.media,
        message.idempotencyKey,
        message.traceId,
      ],
    );
    return rows[0] ? toRecord(rows[0]) : null;
  }

  async find(agentId: string, id: string): Promise<OutboxRecord | null> {
    const rows = await this.database.query(`SELECT ${COLUMNS} FROM outbox_messages WHERE agent_id = $1 AND id = $2`, [
      agentId,
      id,
    ]);
    return rows[0] ? toRecord(rows[0]) : null;
  }

  async findByIdempotencyKey(agentId: string, key: string): Promise<OutboxRecord | null> {
    const rows = await this.database.query(
      `SELECT ${COLUMNS} FROM outbox_messages WHERE agent_id = $1 AND idempotency_key = $2`,
      [agentId, key],
    );
    return rows[0] ? toRecord(rows[0]) : null;
  }

  /** queued → sending. Returns null when the row is gone or no longer queued (deleted with its agent). */
  async claim(id: string): Promise<ClaimedRow | null> {
    const rows = await this.database.query(
      `UPDATE outbox_messages SET status = 'sending', attempts = attempts + 1, updated_at = now()
       WHERE id = $1 AND status = 'queued' RETURNING attempts, media`,
      [id],
    );
    const row = rows[0];
    if (!row) return null;
    return { attempts: Number(row.attempts), media: toBuffer(row.media) };
  }

  async markSent(id: string, waMessageId: string): Promise<void> {
    // The image bytes are only needed to send: a sent row keeps its state, not up to 10 MB of media.
    await this.database.query(
      `UPDATE outbox_messages
       SET status = 'sent', wa_message_id = $2, error = NULL, media = NULL, sent_at = now(), updated_at = now()
       WHERE id = $1`,
      [id, waMessageId],
    );
  }

  /** sending → queued after a failed attempt that will be retried; the error stays visible meanwhile. */
  async markRetry(id: string, error: string): Promise<void> {
    await this.database.query(
      `UPDATE outbox_messages SET status = 'queued', error = $2, updated_at = now() WHERE id = $1`,
      [id, error],
    );
  }

  async markFailed(id: string, error: string): Promise<void> {
    // The image bytes are dropped with the message's last chance: a failed row is kept for its status only.
    await this.database.query(
      `UPDATE outbox_messages SET status = 'failed', error = $2, media = NULL, updated_at = now() WHERE id = $1`,
      [id, error],
    );
  }

  /** Deletes an agent's queued rows (the agent was deleted); returns their ids. */
  async deleteQueued(agentId: string): Promise<string[]> {
    const rows = await this.database.query(
      `DELETE FROM outbox_messages WHERE agent_id = $1 AND status = 'queued' RETURNING id`,
      [agentId],
    );
    return rows.map((row) => String(row.id));
  }

  /** Rows a previous process left in `sending` go back to `queued`; returns how many. */
  async requeueInterrupted(): Promise<number> {
    const rows = await this.database.query(
      `UPDATE outbox_messages SET status = 'queued', updated_at = now() WHERE status = 'sending' RETURNING id`,
    );
    return rows.length;
  }

  /** Every queued row, oldest first. */
  async listQueued(): Promise<OutboxRecord[]> {
    const rows = await this.database.query(
      `SELECT ${COLUMNS} FROM outbox_messages WHERE status = 'queued' ORDER BY seq`,
      [],
    );
    return rows.map(toRecord);
  }
}

function toRecord(row: Row): OutboxRecord {
  return {
    id: String(row.id),
    seq: Number(row.seq),
    agentId: String(row.agent_id),
    kind: row.kind === 'image' ? 'image' : 'text',
    toJid: String(row.to_jid),
    payload: (typeof row.payload === 'string' ? JSON.parse(row.payload) : row.payload) as OutboxPayload,
    status: row.status as OutboxStatus,
    attempts: Number(row.attempts),
    waMessageId: row.wa_message_id == null ? null : String(row.wa_message_id),
    error: row.error == null ? null : String(row.error),
    traceId: row.trace_id == null ? null : String(row.trace_id),
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
    sentAt: row.sent_at == null ? null : toDate(row.sent_at),
  };
}

function toDate(value: unknown): Date {
  return value instanceof Date ? value : new Date(String(value));
}

function toBuffer(value: unknown): Buffer | null {
  if (value == null) return null;
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return null;
}
