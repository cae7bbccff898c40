// The inbound_messages table: claims a WhatsApp message id per agent until it is answered, records the outcome,
// purges old rows.
import { and, eq, lt } from 'drizzle-orm';
import { Batcher } from '../db/batcher.js';
import type { Database, Db } from '../db/client.js';
import { inboundMessages } from '../db/schema.js';

export type InboundOutcome = 'replied' | 'no_reply' | 'ignored' | 'duplicate' | 'ai_error' | 'dropped';

export interface InboundClaim {
  agentId: string;
  waMessageId: string;
  chatJid: string;
  at: Date;
}

interface OutcomeUpdate {
  agentId: string;
  waMessageId: string;
  outcome: InboundOutcome;
}

const keyOf = (agentId: string, waMessageId: string) => `${agentId}\u0000${waMessageId}`;

export class InboundRepository {
  // Every message costs a claim and an outcome write; batched, a busy second costs a few commits instead of hundreds.
  private readonly claims = new Batcher<InboundClaim, boolean>({ run: (items) => this.claimMany(items) });
  private readonly outcomes = new Batcher<OutcomeUpdate, undefined>({
    run: async (items) => {
      await this.setOutcomes(items);
      return items.map(() => undefined);
    },
  });

  private readonly db: Db;

  /** The claim and outcome writes, on every message, are raw prepared SQL; the rest goes through Drizzle. */
  constructor(private readonly database: Database) {
    this.db = database.db;
  }

  /**
   * Records that this message is being handled. False when it was already claimed, by this process or by an
   * earlier one: the row outlives a restart, so a redelivery is not answered twice. A message whose earlier try
   * ended `ai_error` or `dropped` (no answer reached the user) is claimed again, so a redelivery gets another try;
   * one still under way (no outcome yet: also one cut off by a crash or by the shutdown grace) is not.
   */
  claim(agentId: string, waMessageId: string, chatJid: string, at: Date): Promise<boolean> {
    return this.claims.add({ agentId, waMessageId, chatJid, at });
  }

  setOutcome(agentId: string, waMessageId: string, outcome: InboundOutcome): Promise<void> {
    return this.outcomes.add({ agentId, waMessageId, outcome });
  }

  /** One INSERT … ON CONFLICT for many claims; within the batch the first claim of an id wins. */
  async claimMany(items: InboundClaim[]): Promise<boolean[]> {
    // ON CONFLICT DO UPDATE may not touch a row twice in one statement: each id goes once.
    const unique = [...new Map(items.map((item) => [keyOf(item.agentId, item.waMessageId), item])).values()];
    const rows = await this.database.queryRelaxed(
      `INSERT INTO inbound_messages AS m (agent_id, wa_message_id, chat_jid, received_at)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
       ON CONFLICT (agent_id, wa_message_id) DO UPDATE
         SET outcome = NULL, chat_jid = EXCLUDED.chat_jid, received_at = EXCLUDED.received_at
         WHERE m.outcome IN ('ai_error', 'dropped')
       RETURNING agent_id, wa_message_id`,
      [
        unique.map((item) => item.agentId),
        unique.map((item) => item.waMessageId),
        unique.map((item) => item.chatJid),
        unique.map((item) => item.at.toISOString()),
      ],
      'inbound_claim',
    );
    const claimed = new Set(rows.map((row) => keyOf(String(row.agent_id), String(row.wa_message_id))));
    return items.map((item) => claimed.delete(keyOf(item.agentId, item.waMessageId)));
  }

  async setOutcomes(items: OutcomeUpdate[]): Promise<void> {
    await this.database.queryRelaxed(
      `UPDATE inbound_messages AS m SET outcome = v.outcome
       FROM unnest($1::text[], $2::text[], $3::text[]) AS v (agent_id, wa_message_id, outcome)
       WHERE m.agent_id = v.agent_id AND m.wa_message_id = v.wa_message_id`,
      [items.map((item) => item.agentId), items.map((item) => item.waMessageId), items.map((item) => item.outcome)],
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

  /** Deletes rows received before `cutoff`; returns how many. */
  async purgeBefore(cutoff: Date): Promise<number> {
    const rows = await this.db
      .delete(inboundMessages)
      .where(lt(inboundMessages.receivedAt, cutoff))
      .returning({ id: inboundMessages.waMessageId });
    return rows.length;
  }
}
