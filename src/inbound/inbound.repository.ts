// The inbound_messages table: claims a WhatsApp message id once per agent, records the outcome, purges old rows.
import { and, eq, lt, sql } from 'drizzle-orm';
import { Batcher } from '../db/batcher.js';
import type { Db } from '../db/client.js';
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

  constructor(private readonly db: Db) {}

  /**
   * Records that this message is being handled. False when it was already claimed, by this process or by an
   * earlier one: the row outlives a restart, so a redelivery is not answered twice.
   */
  claim(agentId: string, waMessageId: string, chatJid: string, at: Date): Promise<boolean> {
    return this.claims.add({ agentId, waMessageId, chatJid, at });
  }

  setOutcome(agentId: string, waMessageId: string, outcome: InboundOutcome): Promise<void> {
    return this.outcomes.add({ agentId, waMessageId, outcome });
  }

  /** One INSERT … ON CONFLICT DO NOTHING for many claims; within the batch the first claim of an id wins. */
  async claimMany(items: InboundClaim[]): Promise<boolean[]> {
    const rows = await this.db
      .insert(inboundMessages)
      .values(items.map(({ agentId, waMessageId, chatJid, at }) => ({ agentId, waMessageId, chatJid, receivedAt: at })))
      .onConflictDoNothing()
      .returning({ agentId: inboundMessages.agentId, waMessageId: inboundMessages.waMessageId });
    const inserted = new Set(rows.map((row) => keyOf(row.agentId, row.waMessageId)));
    return items.map((item) => inserted.delete(keyOf(item.agentId, item.waMessageId)));
  }

  async setOutcomes(items: OutcomeUpdate[]): Promise<void> {
    const values = sql.join(
      items.map((item) => sql`(${item.agentId}, ${item.waMessageId}, ${item.outcome})`),
      sql`, `,
    );
    await this.db.execute(sql`
      UPDATE inbound_messages AS m SET outcome = v.outcome
      FROM (VALUES ${values}) AS v (agent_id, wa_message_id, outcome)
      WHERE m.agent_id = v.agent_id AND m.wa_message_id = v.wa_message_id`);
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
