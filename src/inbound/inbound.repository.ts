// The inbound_messages table: every message a connected agent receives, with what the chat history serves; for those
// sent to the AI, the claim on the WhatsApp message id until it is answered and the outcome. Purges old rows.
import { and, eq } from 'drizzle-orm';
import { Batcher } from '../db/batcher.js';
import type { Database, Db } from '../db/client.js';
import { PURGE_BATCH_SIZE, type PurgeTarget, purgeInBatches } from '../db/retention.js';
import { inboundMessages } from '../db/schema.js';
import type { InboundMessage } from '../engines/engine.js';

export type InboundOutcome = 'replied' | 'no_reply' | 'ignored' | 'duplicate' | 'ai_error' | 'dropped';

/** What is stored of a message: the engine's fields the history serves. */
export type StoredInbound = Pick<
  InboundMessage,
  | 'id'
  | 'chatJid'
  | 'senderJid'
  | 'text'
  | 'type'
  | 'isGroup'
  | 'fromMe'
  | 'pushName'
  | 'chatName'
  | 'quotedMessageId'
  | 'media'
>;

interface InboundWrite {
  agentId: string;
  message: StoredInbound;
  at: Date;
  /** For a message stored without a claim: why it went no further (`ignored`, or `dropped` before its claim). */
  outcome: InboundOutcome | null;
}

interface OutcomeUpdate {
  agentId: string;
  waMessageId: string;
  outcome: InboundOutcome;
  /** How long the AI took to answer or fail, in whole milliseconds; null when it was not called. */
  aiLatencyMs: number | null;
}

const keyOf = (agentId: string, waMessageId: string) => `${agentId}\u0000${waMessageId}`;

/** What the retention purge deletes: messages received before the cutoff. */
const STORED_INBOUND: PurgeTarget = {
  table: 'inbound_messages',
  key: 'agent_id, wa_message_id',
  olderThan: 'received_at < $1',
};

/** The columns every write sets, in the order of its parameters; unnest turns the arrays into rows. */
const WRITE_COLUMNS = `agent_id, wa_message_id, chat_jid, received_at, sender_jid, from_me, is_group, type, text,
  quoted_message_id, media, push_name, chat_name, outcome`;
const WRITE_ROWS = `SELECT a, w, c, r, s, f, g, t, x, q, m::jsonb, p, n, o FROM unnest($1::text[], $2::text[],
  $3::text[], $4::timestamptz[], $5::text[], $6::boolean[], $7::boolean[], $8::text[], $9::text[], $10::text[],
  $11::text[], $12::text[], $13::text[], $14::text[]) AS v (a, w, c, r, s, f, g, t, x, q, m, p, n, o)`;

function writeParams(items: readonly InboundWrite[]): unknown[] {
  const column = <T>(pick: (item: InboundWrite) => T) => items.map(pick);
  return [
    column((i) => i.agentId),
    column((i) => i.message.id),
    column((i) => i.message.chatJid),
    column((i) => i.at.toISOString()),
    column((i) => i.message.senderJid),
    column((i) => i.message.fromMe),
    column((i) => i.message.isGroup),
    column((i) => i.message.type),
    column((i) => i.message.text),
    column((i) => i.message.quotedMessageId ?? null),
    column((i) => (i.message.media ? JSON.stringify(i.message.media) : null)),
    column((i) => i.message.pushName),
    column((i) => i.message.chatName),
    column((i) => i.outcome),
  ];
}

export class InboundRepository {
  // Every message costs a claim and an outcome write; batched, a busy second costs a few commits instead of hundreds.
  private readonly claims = new Batcher<InboundWrite, boolean>({ run: (items) => this.claimMany(items) });
  private readonly records = new Batcher<InboundWrite, undefined>({
    run: async (items) => {
      await this.recordMany(items);
      return items.map(() => undefined);
    },
  });
  private readonly outcomes = new Batcher<OutcomeUpdate, undefined>({
    run: async (items) => {
      await this.setOutcomes(items);
      return items.map(() => undefined);
    },
  });

  private readonly db: Db;

  /** The claim and outcome writes, on every message, are raw prepared SQL; the rest goes through Drizzle. */
  constructor(
    private readonly database: Database,
    private readonly purgeBatchSize = PURGE_BATCH_SIZE,
  ) {
    this.db = database.db;
  }

  /**
   * Records that this message is being handled. False when it was already claimed, by this process or by an
   * earlier one: the row outlives a restart, so a redelivery is not answered twice. A message whose earlier try
   * ended `ai_error` or `dropped` (no answer reached the user) is claimed again, so a redelivery gets another try;
   * one still under way (no outcome yet: also one cut off by a crash or by the shutdown grace) is not. The claim
   * stores the message too; one stored earlier without a claim (`ignored`) is claimed like a dropped one.
   */
  claim(agentId: string, message: StoredInbound, at: Date): Promise<boolean> {
    return this.claims.add({ agentId, message, at, outcome: null });
  }

  /**
   * Stores a message that goes to no claim (the filter ignored it, or it was dropped before its claim), with that
   * outcome. A message already stored is left as it is: a redelivery changes nothing.
   */
  record(agentId: string, message: StoredInbound, at: Date, outcome: 'ignored' | 'dropped'): Promise<void> {
    return this.records.add({ agentId, message, at, outcome });
  }

  /** The outcome, with the AI's latency when it was called (the activity route's per-minute latency reads it). */
  setOutcome(
    agentId: string,
    waMessageId: string,
    outcome: InboundOutcome,
    aiLatencyMs: number | null = null,
  ): Promise<void> {
    return this.outcomes.add({ agentId, waMessageId, outcome, aiLatencyMs });
  }

  /** One INSERT … ON CONFLICT for many claims; within the batch the first claim of an id wins. */
  async claimMany(items: InboundWrite[]): Promise<boolean[]> {
    // ON CONFLICT DO UPDATE may not touch a row twice in one statement: each id goes once (the first).
    const first = new Map<string, InboundWrite>();
    for (const item of items) {
      const key = keyOf(item.agentId, item.message.id);
      if (!first.has(key)) first.set(key, item);
    }
    const unique = [...first.values()];
    const rows = await this.database.queryRelaxed(
      `INSERT INTO inbound_messages AS m (${WRITE_COLUMNS})
       ${WRITE_ROWS}
       ON CONFLICT (agent_id, wa_message_id) DO UPDATE
         SET outcome = NULL, chat_jid = EXCLUDED.chat_jid, received_at = EXCLUDED.received_at,
           sender_jid = EXCLUDED.sender_jid, from_me = EXCLUDED.from_me, is_group = EXCLUDED.is_group,
           type = EXCLUDED.type, text = EXCLUDED.text, quoted_message_id = EXCLUDED.quoted_message_id,
           media = EXCLUDED.media, push_name = EXCLUDED.push_name, chat_name = EXCLUDED.chat_name
         WHERE m.outcome IN ('ai_error', 'dropped', 'ignored')
       RETURNING agent_id, wa_message_id`,
      writeParams(unique),
      'inbound_claim',
    );
    const claimed = new Set(rows.map((row) => keyOf(String(row.agent_id), String(row.wa_message_id))));
    return items.map((item) => claimed.delete(keyOf(item.agentId, item.message.id)));
  }

  /** One INSERT … ON CONFLICT DO NOTHING for many messages stored without a claim. */
  async recordMany(items: InboundWrite[]): Promise<void> {
    await this.database.queryRelaxed(
      `INSERT INTO inbound_messages (${WRITE_COLUMNS})
       ${WRITE_ROWS}
       ON CONFLICT (agent_id, wa_message_id) DO NOTHING`,
      writeParams(items),
      'inbound_record',
    );
  }

  async setOutcomes(items: OutcomeUpdate[]): Promise<void> {
    await this.database.queryRelaxed(
      `UPDATE inbound_messages AS m SET outcome = v.outcome, ai_latency_ms = v.ai_latency_ms
       FROM unnest($1::text[], $2::text[], $3::text[], $4::int[]) AS v (agent_id, wa_message_id, outcome, ai_latency_ms)
       WHERE m.agent_id = v.agent_id AND m.wa_message_id = v.wa_message_id`,
      [
        items.map((item) => item.agentId),
        items.map((item) => item.waMessageId),
        items.map((item) => item.outcome),
        items.map((item) => item.aiLatencyMs),
      ],
      'inbound_outcome',
    );
  }

  async outcome(agentId: string, waMessageId: string): Promise<InboundOutcome | null | undefined> {
    const rows = await this.db
      .select({ outcome: inboundMessages.outcome })
      .from(inboundMessages)
      .where(and(eq(inboundMessages.agentId, agentId), eq(inboundMessages.waMessageId, waMessageId)));
    return rows[0] === undefined ? undefined : (rows[0].outcome as InboundOutcome | null);
  }

  /**
   * Deletes rows received before `cutoff`, `purgeBatchSize` per statement (purgeInBatches); returns how many.
   */
  purgeBefore(cutoff: Date, signal?: AbortSignal): Promise<number> {
    return purgeInBatches(this.database, STORED_INBOUND, cutoff, { batchSize: this.purgeBatchSize, signal });
  }
}
