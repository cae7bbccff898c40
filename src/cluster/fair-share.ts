// How many sessions each live member should own, and how many leases one member moves in one tick (pure).

export interface MemberCapacity {
  instanceId: string;
  /** MAX_SESSIONS: a hard cap, and the member's weight; null when not set. */
  maxSessions: number | null;
}

/**
 * Each member's share of `sessions`, in proportion to its MAX_SESSIONS. A member without MAX_SESSIONS weighs as much
 * as the mean of those that have one (all weigh the same when none has). No share goes past its member's
 * MAX_SESSIONS: what a capped member cannot take is split among the others in the same proportions. The shares add
 * up to `sessions` exactly (unless every member is full): each gets the whole part of its quota, and what is left
 * goes one each to the largest fractions, ties by instanceId, so every member computes the same shares.
 */
export function fairShares(sessions: number, members: readonly MemberCapacity[]): Map<string, number> {
  const shares = new Map<string, number>();
  const caps = members.flatMap((m) => (m.maxSessions === null ? [] : [m.maxSessions]));
  const capSum = caps.reduce((sum, cap) => sum + cap, 0);
  // Integer weights: a capped member weighs cap × (number of capped members), an uncapped one the sum of the caps,
  // which is the mean cap on the same scale. Quotas are then exact fractions of integers.
  const weight = (m: MemberCapacity) => {
    if (caps.length === 0) return 1;
    return m.maxSessions === null ? capSum : m.maxSessions * caps.length;
  };
  let remaining = Math.max(0, sessions);
  let open = [...members].sort((a, b) => (a.instanceId < b.instanceId ? -1 : a.instanceId > b.instanceId ? 1 : 0));
  while (open.length > 0) {
    const total = open.reduce((sum, m) => sum + weight(m), 0);
    const full = open.filter((m) => m.maxSessions !== null && remaining * weight(m) >= m.maxSessions * total);
    if (full.length === 0) {
      const quotas = open.map((m) => ({
        m,
        whole: Math.floor((remaining * weight(m)) / total),
        fraction: (remaining * weight(m)) % total,
      }));
      let left = remaining - quotas.reduce((sum, q) => sum + q.whole, 0);
      const byFraction = [...quotas].sort((a, b) => b.fraction - a.fraction); // stable: ties stay by instanceId
      for (const q of byFraction) {
        const extra = left > 0 ? 1 : 0;
        left -= extra;
        shares.set(q.m.instanceId, q.whole + extra);
      }
      break;
    }
    for (const m of full) {
      const cap = m.maxSessions ?? 0;
      shares.set(m.instanceId, cap);
      remaining = Math.max(0, remaining - cap);
    }
    open = open.filter((m) => !full.includes(m));
  }
  return shares;
}

/**
 * Whether some member other than `self` is more than one below its share: then a member above its share by only
 * one gives a lease up too, or that member would stay short for good.
 */
export function someoneShort(self: string, shares: Map<string, number>, owned: Map<string, number>): boolean {
  for (const [instanceId, share] of shares) {
    if (instanceId !== self && (owned.get(instanceId) ?? 0) <= share - 2) return true;
  }
  return false;
}

export interface MoveInput {
  /** Leases this member holds now (not counting those it is giving up). */
  owned: number;
  share: number;
  maxSessions: number | null;
  /** Sessions nobody holds a live lease on. */
  free: number;
  /** Another member is more than one below its share (someoneShort). */
  othersShort: boolean;
  maxAcquires: number;
  maxReleases: number;
}

/**
 * Below its share, a member takes free leases. Above its share by more than one (or past its MAX_SESSIONS), or above
 * it at all while another member is more than one short, it gives some up, never going below its share. The slack
 * of one keeps sessions still when one is created or deleted: nobody moves a running session for a difference of
 * one. No flapping: a member takes only up to its share and gives up only down to it, so the leases held above the
 * shares only ever decrease, and what one member gives up goes to one below its share, never back the next tick.
 * Once still, no member is more than one away from its share.
 */
export function planMoves(input: MoveInput): { acquire: number; release: number } {
  const { owned, share, maxSessions, free, othersShort, maxAcquires, maxReleases } = input;
  const limit = maxSessions === null ? share + 1 : Math.min(share + 1, maxSessions);
  if (owned > limit || (owned > share && othersShort)) {
    return { acquire: 0, release: Math.max(0, Math.min(owned - share, maxReleases)) };
  }
  if (owned < share) return { acquire: Math.max(0, Math.min(share - owned, free, maxAcquires)), release: 0 };
  return { acquire: 0, release: 0 };
}
