// Phone numbers WhatsApp has confirmed, per session: the first send to a number asks WhatsApp whether it is on
// WhatsApp at all (an unknown number would otherwise fail slowly, or silently), later sends to it do not ask again.
import { RecipientRejectedError } from './engine.js';

export class KnownRecipients {
  /** In the order they were confirmed: the oldest goes first when the set is full. */
  private readonly confirmed = new Set<string>();

  constructor(private readonly limit = 10_000) {}

  /**
   * Resolves when `jid` may be sent to; throws RecipientRejectedError when WhatsApp says it is not on WhatsApp.
   * Only phone JIDs (`@c.us`) are asked about. A look-up that fails says nothing: the send goes ahead, and is asked
   * about again next time.
   */
  async check(jid: string, isOnWhatsApp: () => Promise<boolean | undefined>): Promise<void> {
    if (!jid.endsWith('@c.us') || this.confirmed.has(jid)) return;
    const onWhatsApp = await isOnWhatsApp().catch(() => undefined);
    if (onWhatsApp === false) throw new RecipientRejectedError('not_on_whatsapp', jid);
    if (onWhatsApp === undefined) return;
    if (this.confirmed.size >= this.limit) {
      const oldest = this.confirmed.values().next().value;
      if (oldest !== undefined) this.confirmed.delete(oldest);
    }
    this.confirmed.add(jid);
  }
}
