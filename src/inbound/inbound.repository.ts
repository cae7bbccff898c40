// The inbound_messages table: claims a WhatsApp message id once per agent, records the outcome, purges old rows.
import { and, eq, lt } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { inboundMessages } from '../db/schema.js';

export type InboundOutcome = 'replied' | 'no_reply' | 'ignored' | 'duplicate' | 'ai_error' | 'dropped';

export class InboundRepository {
  constructor(private readonly db: Db) {}

  /**
   * Records that this message is being handled. False when it was already claimed, by this process or by an
   * earlier one: the row outlives a restart, so a redelivery is not answered twice.
   */
  async claim(agentId: string, waMessageId: string, chatJid: string, at: Date): Promise<boolean> {
    const rows = await this.db
      .insert(inboundMessages)
      .values({ agentId, waMessageId, chatJid, receivedAt: at })
      .onConflictDoNothing()
      .returning({ id: inboundMessages.waMessageId });
    return rows.length === 1;
  }

  async setOutcome(agentId: string, waMessageId: string, outcome: InboundOutcome): Promise<void> {
    await this.db
      .update(inboundMessages)
      .set({ outcome })
      .where(and(eq(inboundMessages.agentId, agentId), eq(inboundMessages.waMessageId, waMessageId)));
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
