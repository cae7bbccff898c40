// Which process runs which session. With PostgreSQL every process is a member of one cluster and sessions are
// owned through leases (docs/cluster.md); with PGlite there is one process, which owns every session.

/**
 * What an owner does when a lease changes hands. For one agent the hooks run in order (its `acquired` finishes before
 * its `released` begins), a few agents at a time, beside the renewals (a slow hook never delays one). A lease is
 * given up in the table only after its `released` hook has finished; a hook that throws is logged, and the handover
 * goes on. A hook must not await `claim` or `forget` of its own agent (they wait for the hooks before them: a
 * deadlock). The single-process cluster (PGlite) calls no hook.
 */
export interface LeaseHooks {
  /** This member now owns the agent: start its session if it should run, load its queued messages. */
  acquired(agentId: string, epoch: number): Promise<void>;
  /**
   * This member gives the agent up (rebalance, shutdown) or has lost it: stop its session, drop its queue. `epochOf`
   * already answers null when it is called. 'deleted' may come while the sessions service deletes the agent itself
   * (the agent's row went, or `forget`): make it idempotent.
   */
  released(agentId: string, reason: 'rebalance' | 'shutdown' | 'lost' | 'deleted'): Promise<void>;
  /**
   * Whether a rebalance may give the agent up now (yes when absent): a session someone is linking (a QR or pairing
   * code showing) stays where the phone is looking at it. Asked only by rebalancing: shutdown and expiry take every
   * lease. Synchronous and cheap: asked for the newest leases at every tick that releases.
   */
  movable?(agentId: string): boolean;
}

export interface MemberView {
  instanceId: string;
  url: string | null;
  maxSessions: number | null;
  /** Milliseconds since its last heartbeat, by the database's clock. */
  heartbeatAgeMs: number;
  /** Its heartbeat is within LEASE_TTL_MS; a gone member is listed for a while (about a minute), not live. */
  live: boolean;
  /** Sessions it owns now. */
  sessions: number;
  self: boolean;
}

export interface Cluster {
  readonly instanceId: string;
  /** True when this process is the only one (PGlite): it owns every session, with epoch 0, and nothing moves. */
  readonly single: boolean;
  /**
   * Registers the member, takes its share of leases (calling the hooks, and awaiting them), and keeps them renewed.
   * Throws when the database cannot be reached, or when another live process has the same INSTANCE_ID (after waiting
   * up to a TTL for a crashed predecessor's row to go stale).
   */
  start(hooks: LeaseHooks): Promise<void>;
  /**
   * Releases every lease (calling `released`, renewals going on meanwhile), so that others take over at once, and
   * leaves the cluster. Bounded in time: leases whose hook has not finished by then are left to expire. Safe before
   * start() and twice.
   */
  stop(): Promise<void>;
  /**
   * The epoch of the lease this member holds on the agent, when it holds one that is still valid by its own clock
   * (docs/cluster.md, "Local validity"); null otherwise. O(1): called before every send.
   */
  epochOf(agentId: string): number | null;
  /**
   * Takes the agent's lease now if nobody holds it (a session just created, or asked for by a request this member
   * received); true when this member owns it afterwards. Calls, and awaits, `acquired` when it took the lease. The
   * agent's whatsapp_user row must exist (false otherwise: a made-up id makes no lease); claim after creating it.
   * Takes it even past this member's share or MAX_SESSIONS: the next ticks rebalance.
   */
  claim(agentId: string): Promise<boolean>;
  /** The member that owns the agent, as the lease table says now; null when nobody does. */
  ownerOf(agentId: string): Promise<{ instanceId: string; url: string | null } | null>;
  /**
   * The agent was deleted: its lease goes (calling, and awaiting, `released` with 'deleted' when this member held it),
   * whoever held it. A lease left behind (forget not called) is given up at its holder's next tick.
   */
  forget(agentId: string): Promise<void>;
  /** Every member row, this one included (`self`), ordered by instanceId. */
  members(): Promise<MemberView[]>;
}
