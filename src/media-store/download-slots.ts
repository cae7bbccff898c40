// Bounded downloads: a few per agent and more for the process, so one agent's large files never starve another's.

interface Waiter {
  agentId: string;
  resolve: (release: () => void) => void;
}

export interface DownloadSlotLimits {
  /** Downloads of one agent at once (MEDIA_DOWNLOADS_PER_AGENT). */
  perAgent: number;
  /** Downloads in the process at once (MEDIA_DOWNLOADS_MAX). */
  total: number;
}

/**
 * Slots handed out in arrival order among the agents that are under their own bound: a waiting agent at its bound
 * lets the next agent's download go first, so a burst of one agent's files queues behind itself only.
 */
export class DownloadSlots {
  private running = 0;
  private readonly byAgent = new Map<string, number>();
  private readonly waiting: Waiter[] = [];

  constructor(private readonly limits: DownloadSlotLimits) {}

  /** Resolves with the slot's release (safe to call twice) once the agent may download. */
  take(agentId: string): Promise<() => void> {
    return new Promise((resolve) => {
      this.waiting.push({ agentId, resolve });
      this.drain();
    });
  }

  /** Downloads waiting for a slot. */
  get pending(): number {
    return this.waiting.length;
  }

  private drain(): void {
    for (let i = 0; i < this.waiting.length && this.running < this.limits.total; ) {
      const waiter = this.waiting[i];
      if (!waiter || (this.byAgent.get(waiter.agentId) ?? 0) >= this.limits.perAgent) {
        i += 1;
        continue;
      }
      this.waiting.splice(i, 1);
      waiter.resolve(this.grant(waiter.agentId));
    }
  }

  private grant(agentId: string): () => void {
    this.running += 1;
    this.byAgent.set(agentId, (this.byAgent.get(agentId) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running -= 1;
      const left = (this.byAgent.get(agentId) ?? 1) - 1;
      if (left > 0) this.byAgent.set(agentId, left);
      else this.byAgent.delete(agentId);
      this.drain();
    };
  }
}
