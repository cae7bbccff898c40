// The last messages a session saw or sent, by id: Baileys needs them to quote a message and to resend on retry.
import type { proto, WAMessage } from 'baileys';

export class RecentMessages {
  private readonly byId = new Map<string, WAMessage>();

  constructor(private readonly capacity: number) {}

  remember(message: WAMessage): void {
    const id = message.key.id;
    if (!id) return;
    this.byId.delete(id);
    this.byId.set(id, message);
    if (this.byId.size > this.capacity) {
      const oldest = this.byId.keys().next().value;
      if (oldest !== undefined) this.byId.delete(oldest);
    }
  }

  get(id: string): WAMessage | undefined {
    return this.byId.get(id);
  }

  content(id: string | null | undefined): proto.IMessage | undefined {
    return id ? (this.byId.get(id)?.message ?? undefined) : undefined;
  }
}
