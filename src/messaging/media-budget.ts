// Images in flight: each holds its request body, its decoded bytes and its insert in memory until it is answered, so
// how many there are is bounded per agent and for the whole process; past either bound the request gets 429 before
// its body is read. Memory for images then stays near MEDIA_IN_FLIGHT_MAX × a few × MEDIA_MAX_BYTES.

export interface MediaBudgetLimits {
  /** Images one agent may have in flight (MEDIA_IN_FLIGHT_PER_AGENT). */
  perAgent: number;
  /** Images the process may have in flight (MEDIA_IN_FLIGHT_MAX). */
  total: number;
}

export class MediaBudget {
  private total = 0;
  private readonly byAgent = new Map<string, number>();

  constructor(private readonly limits: MediaBudgetLimits) {}

  /** A place for one more image of the agent, with its release (safe to call twice); null when none is free. */
  take(agentId: string): (() => void) | null {
    const mine = this.byAgent.get(agentId) ?? 0;
    if (mine >= this.limits.perAgent || this.total >= this.limits.total) return null;
    this.byAgent.set(agentId, mine + 1);
    this.total += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total -= 1;
      const left = (this.byAgent.get(agentId) ?? 1) - 1;
      if (left > 0) this.byAgent.set(agentId, left);
      else this.byAgent.delete(agentId);
    };
  }
}
