// The outbox table: every message an agent sends is a row, queued → sent | failed. ("sending" is the dispatcher's
// in-memory state while WhatsApp has the message in hand; the table holds it only for rows of older versions.)
import { open } from 'node:fs/promises';
import type { Database, Row } from '../db/client.js';
import { type PurgeOptions, type PurgeTarget, purgeInBatches } from '../db/retention.js';
import { OUTBOUND_KINDS, type OutboundKind } from '../engines/engine.js';

/** Every state a message can be seen in; the table holds all but `sending`. */
export const OUTBOX_STATUSES = ['queued', 'sending', 'sent', 'failed'] as const;
export type OutboxStatus = (typeof OUTBOX_STATUSES)[number];

/** What a row sends: a text, a file (media kinds), a location, a contact card, a reaction, a read mark or typing. */
export const OUTBOX_KINDS = OUTBOUND_KINDS;
export type OutboxKind = OutboundKind;

/**
 * A new row's file: bytes in memory (decoded base64), or a file on disk (an upload or a download streamed there),
 * read a chunk at a time while the row commits.
 */
export type OutboxMediaSource = Buffer | { path: string; size: number };

/** Chunks of a file are written (and read) this large: bounded memory per statement, few statements per file. */
export const MEDIA_CHUNK_BYTES = 1024 * 1024;

/** What the engine needs to send the message again after a restart, minus the image bytes (kept in `media`). */
export interface OutboxPayload {
  text?: string;
  caption?: string | undefined;
  filename?: string;
  mimeType?: string;
  quotedMessageId?: string | undefined;
  mentions?: string[] | undefined;
  previewPath?: string | undefined;
  /** audio: send as a voice note (push to talk). */
  voice?: boolean | undefined;
  /** A file's size in bytes. */
  size?: number | undefined;
  location?: { latitude: number; longitude: number; name?: string | undefined; address?: string | undefined };
  contact?: { vcard: string; displayName: string };
  /** reaction: the emoji ('' takes it back) and the message it is for. */
  reaction?: {
    emoji: string;
    chatJid: string;
    waMessageId: string;
    fromMe: boolean;
    participant?: string | undefined;
  };
  /** typing: on or off. */
  typing?: boolean | undefined;
  /** The account (its phone JID) the message was accepted for: it is never sent from another one. */
  account?: string | undefined;
  /** With an Idempotency-Key: a hash of the request, so that a retry can be told from a reused key. */
  fingerprint?: string | undefined;
}

export interface NewOutboxMessage {
  id: string;
  agentId: string;
  kind: OutboxKind;
  toJid: string;
  payload: OutboxPayload;
  media: OutboxMediaSource | null;
  idempotencyKey: string | null;
  traceId: string | null;
}

/** A row without its media bytes, which only the dispatcher reads, once, just before it sends an image. */
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
  receipts: MessageReceipts;
  /** A paced message: when it may be sent (set when its dispatcher first took it); null otherwise, or not yet. */
  notBefore: Date | null;
}

/** What WhatsApp said became of a sent message: when each receipt first came (null: none yet), and its error. */
export interface MessageReceipts {
  server: Date | null;
  delivered: Date | null;
  read: Date | null;
  played: Date | null;
  error: string | null;
  errorAt: Date | null;
}

/**
 * Receipts to record for the message an agent sent with this WhatsApp id: the time of each (epoch milliseconds), null
 * where none came. A time already in the row is kept: the first one wins, so a receipt that comes late, or twice,
 * changes nothing.
 */
export interface ReceiptUpdate {
  agentId: string;
  waMessageId: string;
  server: number | null;
  delivered: number | null;
  read: number | null;
  played: number | null;
  error: string | null;
  errorAt: number | null;
}

/**
 * A row's new state after a send attempt: sent, failed, or back to queued for a retry. `attempts` is the row's
 * total, not an increment, so writing the same transition twice, or only the latest of several, is harmless.
 */
export interface OutboxTransition {
  id: string;
  status: 'queued' | 'sent' | 'failed';
  attempts: number;
  waMessageId: string | null;
  error: string | null;
  /** When the attempt ended, in epoch milliseconds (a number: a Date per send costs more than it gives). */
  at: number;
}

/**
 * Inserts the rows of a JSON array parameter ($1), each `queued`. A row is an array, its values in the order of the
 * columns below (toRowValues): shorter to write, and to parse, than an object that names every value.
 */
const INSERT_ROWS = `INSERT INTO outbox_messages (id, agent_id, kind, to_jid, payload, media, idempotency_key, trace_id)
  SELECT r->>0, r->>1, r->>2, r->>3, r->4, decode(r->>5, 'base64'), r->>6, r->>7
  FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e (r, n)
  ORDER BY n
  ON CONFLICT (agent_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING`;

/** INSERT_ROWS as a CTE, and the ids of its inserted rows that carry an idempotency key: the others return nothing. */
const INSERTED = `inserted AS (${INSERT_ROWS} RETURNING id, idempotency_key)`;
const KEYED_IDS = 'SELECT id FROM inserted WHERE idempotency_key IS NOT NULL';

const COLUMNS = `id, seq, agent_id, kind, to_jid, payload, status, attempts, wa_message_id, error, trace_id,
  created_at, updated_at, sent_at, server_at, delivered_at, read_at, played_at, ack_error, ack_error_at, not_before`;
/** COLUMNS of the row aliased `o`, for a join. */
const O_COLUMNS = COLUMNS.split(',')
  .map((column) => `o.${column.trim()}`)
  .join(', ');

/** Chunks of no row, by when they were written: a commit that never ended, or a row deleted with its agent. */
const STRAY_CHUNKS: PurgeTarget = {
  table: 'outbox_media_chunks',
  key: 'message_id, n',
  olderThan: `created_at < $1 AND NOT EXISTS (SELECT 1 FROM outbox_messages m WHERE m.id = outbox_media_chunks.message_id)`,
};

/** What the retention purge deletes: sent and failed rows, by when they last changed. */
const SETTLED_OUTBOX: PurgeTarget = {
  table: 'outbox_messages',
  key: 'id',
  olderThan: `status IN ('sent', 'failed') AND updated_at < $1`,
};

export class OutboxRepository {
  constructor(private readonly database: Database) {}

  /**
   * Inserts new rows and applies transitions to earlier ones, in one statement (one commit) whose text never
   * changes, prepared once per connection. Rows are inserted in order, so their seq follows the array's order.
   * A row without an idempotency key is always inserted when the statement succeeds. Of the rows with one, returns
   * the ids of those inserted: a keyed row missing from the set was not inserted because its agent already used its
   * key (also when an earlier row of the same batch did). Nothing comes back for the other rows, which are most of
   * them, so the driver has no result rows to read. A sent or failed row drops its image bytes: it is kept for its
   * state only. At most one transition per id, and none for a row inserted by the same call. A row with a file is
   * written alone; `abandoned` tells when its caller has given up, and then its commit stops (no row, no chunks).
   */
  async write(
    inserts: readonly NewOutboxMessage[],
    transitions: readonly OutboxTransition[],
    abandoned?: () => boolean,
  ): Promise<Set<string>> {
    if (inserts.length === 0 && transitions.length === 0) return new Set();
    const withMedia = inserts.find((row) => row.media);
    if (withMedia) {
      if (inserts.length > 1 || transitions.length > 0) throw new Error('a row with media is written alone');
      return this.writeWithMedia(withMedia, abandoned ?? (() => false));
    }
    // The new rows are one JSON parameter: JSON.stringify is the cheapest way to hand the driver many rows. Times go
    // as epoch milliseconds: formatting dates costs more than the rest of the row.
    const rows = JSON.stringify(inserts.map(toRowValues));
    // A batch with no outcomes to write skips the UPDATE, and the planning of it.
    const inserted =
      transitions.length === 0
        ? await this.database.query(`WITH ${INSERTED} ${KEYED_IDS}`, [rows], 'outbox_insert')
        : await this.database.query(
            `WITH moved AS (
               UPDATE outbox_messages AS o
               SET status = v.status, attempts = v.attempts, wa_message_id = v.wa_message_id, error = v.error,
                   media = CASE WHEN v.status = 'queued' THEN o.media END,
                   sent_at = CASE WHEN v.status = 'sent' THEN v.at ELSE o.sent_at END,
                   updated_at = v.at
               FROM (
                 SELECT id, status, attempts, wa_message_id, error, to_timestamp(at_ms / 1000) AS at
                 FROM unnest($2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::float8[])
                   AS u (id, status, attempts, wa_message_id, error, at_ms)
               ) AS v
               -- Batches commit side by side: an older outcome of a row (a retry's error) that lands after a newer
               -- one (the retry's success) must not undo it. Each attempt ends in one outcome, so attempts order them.
               WHERE o.id = v.id AND o.attempts <= v.attempts
               RETURNING o.id, o.status
             ), unchunked AS (
               -- A sent or failed row's file is of no more use: its chunks go in the same commit.
               DELETE FROM outbox_media_chunks c USING moved m WHERE c.message_id = m.id AND m.status <> 'queued'
             ), ${INSERTED}
             ${KEYED_IDS}`,
            [
              rows,
              // Arrays, not JSON, for the join: the planner then knows how many rows it looks up (one index probe
              // each).
              transitions.map((t) => t.id),
              transitions.map((t) => t.status),
              transitions.map((t) => t.attempts),
              transitions.map((t) => t.waMessageId),
              transitions.map((t) => t.error),
              transitions.map((t) => t.at),
            ],
            'outbox_write',
          );
    return new Set(inserted.map((row) => String(row.id)));
  }

  /**
   * Records receipts on the rows they are for, found by agent and WhatsApp id (so only once a row's `sent` state is
   * written), in one statement. Returns the keys (receiptKey) of the receipts that found their row.
   */
  async writeReceipts(updates: readonly ReceiptUpdate[]): Promise<Set<string>> {
    if (updates.length === 0) return new Set();
    const rows = await this.database.query(
      `UPDATE outbox_messages AS o
       SET server_at = COALESCE(o.server_at, v.server_at), delivered_at = COALESCE(o.delivered_at, v.delivered_at),
           read_at = COALESCE(o.read_at, v.read_at), played_at = COALESCE(o.played_at, v.played_at),
           ack_error = COALESCE(o.ack_error, v.ack_error), ack_error_at = COALESCE(o.ack_error_at, v.ack_error_at)
       FROM (
         SELECT agent_id, wa_message_id, to_timestamp(server_ms / 1000) AS server_at,
           to_timestamp(delivered_ms / 1000) AS delivered_at, to_timestamp(read_ms / 1000) AS read_at,
           to_timestamp(played_ms / 1000) AS played_at, ack_error, to_timestamp(error_ms / 1000) AS ack_error_at
         FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::text[],
           $8::float8[]) AS u (agent_id, wa_message_id, server_ms, delivered_ms, read_ms, played_ms, ack_error, error_ms)
       ) AS v
       WHERE o.agent_id = v.agent_id AND o.wa_message_id = v.wa_message_id
       RETURNING o.agent_id, o.wa_message_id`,
      [
        updates.map((u) => u.agentId),
        updates.map((u) => u.waMessageId),
        updates.map((u) => u.server),
        updates.map((u) => u.delivered),
        updates.map((u) => u.read),
        updates.map((u) => u.played),
        // PostgreSQL text cannot hold NUL, and an engine's error message could.
        updates.map((u) => u.error?.replaceAll('\u0000', '') ?? null),
        updates.map((u) => u.errorAt),
      ],
      'outbox_receipts',
    );
    return new Set(rows.map((row) => receiptKey(String(row.agent_id), String(row.wa_message_id))));
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

  /**
   * A row with a file: first the file's chunks (MEDIA_CHUNK_BYTES each, read from disk as it goes, so that a 100 MB
   * document is never one parameter nor whole in memory), each its own statement and commit, then the row. The file is
   * whole and durable before the row exists, and no transaction holds a connection for the whole file: on PGlite, the
   * one connection every agent shares serves the others between two chunks. Once its caller has stopped waiting
   * (`abandoned`), it stops before the next statement. Chunks whose row never came (a failure, a caller gone, a crash,
   * an idempotency key already used) are deleted here when the database lets us, and by purgeStrayChunksBefore
   * otherwise. Returns as write() does.
   */
  private async writeWithMedia(row: NewOutboxMessage, abandoned: () => boolean): Promise<Set<string>> {
    const media = row.media;
    let inserted: Row[] = [];
    const goOn = () => {
      if (abandoned()) throw new Error('not written: its caller stopped waiting for the commit');
    };
    try {
      if (media) {
        let n = 0;
        for await (const chunk of mediaChunks(media)) {
          goOn();
          await this.database.query(
            'INSERT INTO outbox_media_chunks (message_id, n, data) VALUES ($1, $2, $3)',
            [row.id, n, chunk],
            'outbox_media_chunk',
          );
          n += 1;
        }
      }
      goOn();
      inserted = await this.database.query(
        `WITH inserted AS (${INSERT_ROWS} RETURNING id, idempotency_key) SELECT id, idempotency_key FROM inserted`,
        [JSON.stringify([toRowValues({ ...row, media: null })])],
        'outbox_insert_media',
      );
    } finally {
      if (inserted.length === 0) await this.dropChunks(row.id).catch(() => undefined);
    }
    return new Set(inserted.filter((r) => r.idempotency_key != null).map((r) => String(r.id)));
  }

  private async dropChunks(id: string): Promise<void> {
    await this.database.query('DELETE FROM outbox_media_chunks WHERE message_id = $1', [id]);
  }

  /**
   * Deletes the chunks written before `cutoff` that belong to no row: the files of commits that never ended (a crash
   * between the chunks and the row) and of rows deleted with their agent; returns how many chunks.
   */
  purgeStrayChunksBefore(cutoff: Date, options?: PurgeOptions): Promise<number> {
    return purgeInBatches(this.database, STRAY_CHUNKS, cutoff, options);
  }

  /**
   * A file's bytes, read just before it is sent: its chunks in order (or, for a row of an older version, its media
   * column); null once the row is sent, failed or gone.
   */
  async media(id: string): Promise<Buffer | null> {
    const chunks = await this.database.query('SELECT data FROM outbox_media_chunks WHERE message_id = $1 ORDER BY n', [
      id,
    ]);
    if (chunks.length > 0) {
      const buffers = chunks.map((row) => toBuffer(row.data) ?? Buffer.alloc(0));
      return buffers.length === 1 ? (buffers[0] ?? null) : Buffer.concat(buffers);
    }
    const rows = await this.database.query('SELECT media FROM outbox_messages WHERE id = $1', [id]);
    return toBuffer(rows[0]?.media);
  }

  /**
   * The message a reaction names, by our outbox id or WhatsApp's id: one the agent sent (its row's chat and WhatsApp
   * id; `waMessageId` null while it is not sent yet), else one it received (the stored inbound message). Null when
   * the agent has neither.
   */
  async findMessageRef(
    agentId: string,
    messageId: string,
  ): Promise<{ chatJid: string; waMessageId: string | null; fromMe: boolean; participant: string | null } | null> {
    const rows = await this.database.query(
      `(SELECT to_jid AS chat_jid, wa_message_id, true AS from_me, NULL::text AS participant, 0 AS rank
          FROM outbox_messages WHERE agent_id = $1 AND (id = $2 OR wa_message_id = $2)
          AND kind NOT IN ('reaction', 'read', 'typing'))
       UNION ALL
       (SELECT chat_jid, wa_message_id, COALESCE(from_me, false), CASE WHEN is_group THEN sender_jid END, 1
          FROM inbound_messages WHERE agent_id = $1 AND wa_message_id = $2)
       ORDER BY rank LIMIT 1`,
      [agentId, messageId],
    );
    const row = rows[0];
    if (!row) return null;
    return {
      chatJid: String(row.chat_jid),
      waMessageId: row.wa_message_id == null ? null : String(row.wa_message_id),
      fromMe: row.from_me === true,
      participant: row.participant == null ? null : String(row.participant),
    };
  }

  /**
   * Deletes an agent's unsent rows (the agent was deleted), except `keep`: rows whose send is in flight or whose
   * outcome is not written yet. Returns the deleted ids.
   */
  async deleteUnsent(agentId: string, keep: readonly string[]): Promise<string[]> {
    const rows = await this.database.query(
      `WITH gone AS (
         DELETE FROM outbox_messages
         WHERE agent_id = $1 AND status IN ('queued', 'sending') AND NOT (id = ANY($2::text[]))
         RETURNING id
       ), unchunked AS (
         DELETE FROM outbox_media_chunks c USING gone g WHERE c.message_id = g.id
       )
       SELECT id FROM gone`,
      [agentId, keep],
    );
    return rows.map((row) => String(row.id));
  }

  /**
   * Deletes the unsent rows of agents that no longer exist: their deletion removed the agent but not its queue (the
   * database failed in between). Left alone they would wait forever, or go out from a new agent given the same id.
   * Returns how many rows each such agent had.
   */
  async deleteOrphaned(): Promise<Map<string, number>> {
    const rows = await this.database.query(
      `WITH gone AS (
         DELETE FROM outbox_messages o
         WHERE o.status IN ('queued', 'sending')
           AND NOT EXISTS (SELECT 1 FROM whatsapp_user u WHERE u.agent_id = o.agent_id)
         RETURNING o.id, o.agent_id
       ), unchunked AS (
         DELETE FROM outbox_media_chunks c USING gone g WHERE c.message_id = g.id
       )
       SELECT agent_id, count(*)::int AS n FROM gone GROUP BY agent_id`,
    );
    return new Map(rows.map((row) => [String(row.agent_id), Number(row.n)]));
  }

  /**
   * Deletes sent and failed rows last changed before `cutoff` (retention), in batches (purgeInBatches); returns how
   * many.
   */
  purgeSettledBefore(cutoff: Date, options?: PurgeOptions): Promise<number> {
    return purgeInBatches(this.database, SETTLED_OUTBOX, cutoff, options);
  }

  /** Rows an earlier version left in `sending` go back to `queued`; returns how many. */
  async requeueInterrupted(): Promise<number> {
    const rows = await this.database.query(
      `UPDATE outbox_messages SET status = 'queued', updated_at = now() WHERE status = 'sending' RETURNING id`,
    );
    return rows.length;
  }

  /**
   * The agent's queued rows, oldest first, when `lease` is still held by that member with that epoch (checked in the
   * same statement: a member that lost the lease gets nothing). Without a lease (one process), all of them.
   */
  async listQueuedFor(agentId: string, lease: { owner: string; epoch: number } | null): Promise<OutboxRecord[]> {
    const rows = await this.database.query(
      `SELECT ${O_COLUMNS} FROM outbox_messages o
       WHERE o.agent_id = $1 AND o.status = 'queued'
         AND ($2::text IS NULL OR EXISTS (
           SELECT 1 FROM session_leases l
           WHERE l.agent_id = o.agent_id AND l.owner = $2 AND l.epoch = $3 AND l.expires_at > now()))
       ORDER BY o.seq`,
      [agentId, lease?.owner ?? null, lease?.epoch ?? 0],
    );
    return rows.map(toRecord);
  }

  /** The queued rows of every agent whose lease `owner` holds now, with each lease's epoch, oldest first. */
  async listQueuedOwnedBy(owner: string): Promise<Array<OutboxRecord & { epoch: number }>> {
    const rows = await this.database.query(
      `SELECT ${O_COLUMNS}, l.epoch
       FROM outbox_messages o JOIN session_leases l ON l.agent_id = o.agent_id
       WHERE l.owner = $1 AND l.expires_at > now() AND o.status = 'queued'
       ORDER BY o.seq`,
      [owner],
    );
    return rows.map((row) => ({ ...toRecord(row), epoch: Number(row.epoch) }));
  }

  /** Of these rows, those sent or failed, with their outcome: what a request waiting on another member polls. */
  async outcomes(
    ids: readonly string[],
  ): Promise<Array<{ id: string; status: 'sent' | 'failed'; waMessageId: string | null; error: string | null }>> {
    const rows = await this.database.query(
      `SELECT id, status, wa_message_id, error FROM outbox_messages
       WHERE id = ANY($1::text[]) AND status IN ('sent', 'failed')`,
      [ids],
      'outbox_outcomes',
    );
    return rows.map((row) => ({
      id: String(row.id),
      status: row.status === 'sent' ? 'sent' : 'failed',
      waMessageId: row.wa_message_id == null ? null : String(row.wa_message_id),
      error: row.error == null ? null : String(row.error),
    }));
  }

  /**
   * A paced message's send time, kept the first time it is set (epoch ms): a restart, or another member taking the
   * agent over, waits for what is left of it. Returns the time the row holds, or null when the row is gone.
   */
  async setNotBefore(id: string, at: number): Promise<number | null> {
    const rows = await this.database.query(
      `UPDATE outbox_messages SET not_before = coalesce(not_before, to_timestamp($2::float8 / 1000))
       WHERE id = $1 RETURNING (extract(epoch FROM not_before) * 1000)::float8 AS at`,
      [id, at],
    );
    return rows[0] ? Number(rows[0].at) : null;
  }

  /**
   * When the agent last sent a message to `toJid` (epoch ms), as the table says; null when never. Read marks and
   * typing are not messages (they are not paced, and do not space the next message either).
   */
  async lastSentTo(agentId: string, toJid: string): Promise<number | null> {
    const rows = await this.database.query(
      `SELECT (extract(epoch FROM max(sent_at)) * 1000)::float8 AS at FROM outbox_messages
       WHERE agent_id = $1 AND to_jid = $2 AND status = 'sent' AND kind NOT IN ('read', 'typing')`,
      [agentId, toJid],
    );
    const at = rows[0]?.at;
    return at == null ? null : Number(at);
  }

  /** The agent's messages not sent yet, in the table: the queue's depth as any member can read it. */
  async countQueued(agentId: string): Promise<number> {
    const rows = await this.database.query(
      `SELECT count(*)::int AS n FROM outbox_messages WHERE agent_id = $1 AND status IN ('queued', 'sending')`,
      [agentId],
    );
    return Number(rows[0]?.n ?? 0);
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

/** A new row as INSERT_ROWS reads it: its values in column order, null where it has none. */
function toRowValues(m: NewOutboxMessage): unknown[] {
  return [
    m.id,
    m.agentId,
    m.kind,
    m.toJid,
    m.payload,
    null, // a file goes to outbox_media_chunks (writeWithMedia); the column serves rows of older versions

    m.idempotencyKey,
    m.traceId,
  ];
}

function toRecord(row: Row): OutboxRecord {
  return {
    id: String(row.id),
    seq: Number(row.seq),
    agentId: String(row.agent_id),
    kind: (OUTBOX_KINDS as readonly unknown[]).includes(row.kind) ? (row.kind as OutboxKind) : 'text',
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
    receipts: {
      server: toDateOrNull(row.server_at),
      delivered: toDateOrNull(row.delivered_at),
      read: toDateOrNull(row.read_at),
      played: toDateOrNull(row.played_at),
      error: row.ack_error == null ? null : String(row.ack_error),
      errorAt: toDateOrNull(row.ack_error_at),
    },
    notBefore: toDateOrNull(row.not_before),
  };
}

/** How a message is named among receipts: its agent and WhatsApp's id of it. */
export function receiptKey(agentId: string, waMessageId: string): string {
  return `${agentId}\u0000${waMessageId}`;
}

function toDateOrNull(value: unknown): Date | null {
  return value == null ? null : toDate(value);
}

function toDate(value: unknown): Date {
  return value instanceof Date ? value : new Date(String(value));
}

/** A file's chunks: slices of the buffer (no copy), or reads of the file, MEDIA_CHUNK_BYTES each. */
async function* mediaChunks(media: OutboxMediaSource): AsyncGenerator<Buffer> {
  if (Buffer.isBuffer(media)) {
    for (let at = 0; at < media.length; at += MEDIA_CHUNK_BYTES) yield media.subarray(at, at + MEDIA_CHUNK_BYTES);
    return;
  }
  const file = await open(media.path, 'r');
  try {
    for (;;) {
      // A fresh buffer per chunk: the driver may still hold the previous one while it writes it out.
      const buffer = Buffer.allocUnsafe(MEDIA_CHUNK_BYTES);
      const { bytesRead } = await file.read(buffer, 0, MEDIA_CHUNK_BYTES, null);
      if (bytesRead === 0) return;
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await file.close();
  }
}

function toBuffer(value: unknown): Buffer | null {
  if (value == null) return null;
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return null;
}
