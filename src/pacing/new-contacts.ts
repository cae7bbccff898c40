// The daily cap on new contacts: a paced agent's first message to someone it never exchanged a message with is
// refused (429 NEW_CONTACT_LIMIT, nothing queued) once newContactsPerDay others were written to in the last 24 h.
import type { Clock } from '../clock.js';
import { AppError } from '../errors.js';
import { jidKind } from '../whatsapp/jid.js';
import { DAY_MS, type PacingRepository } from './pacing.repository.js';

/** Contacts remembered as known, per agent: past this the oldest are forgotten (and read again when needed). */
const KNOWN_PER_AGENT = 10_000;

export interface NewContactsOptions {
  repository: Pick<PacingRepository, 'isKnownContact' | 'admitNewContact'>;
  clock: Pick<Clock, 'now'>;
}

export class NewContacts {
  /** Contacts each agent is known to have exchanged a message with: a contact never becomes new again. */
  private readonly known = new Map<string, Set<string>>();

  constructor(private readonly options: NewContactsOptions) {}

  /**
   * Resolves when the agent may write to `jid` under a cap of `limit` new contacts a day; throws NEW_CONTACT_LIMIT
   * otherwise. Groups are never new contacts (writing in one needs its membership). A known contact costs no query
   * once seen; a new one costs two statements, and is known from then on.
   */
  async admit(agentId: string, jid: string, limit: number): Promise<void> {
    if (jidKind(jid) === 'group' || this.isKnown(agentId, jid)) return;
    const { repository, clock } = this.options;
    if (await repository.isKnownContact(agentId, jid)) {
      this.remember(agentId, jid);
      return;
    }
    const now = clock.now();
    const outcome =
      limit > 0 ? await repository.admitNewContact(agentId, jid, now, limit) : { admitted: false, oldest: null };
    if (outcome.admitted) {
      this.remember(agentId, jid);
      return;
    }
    // A place frees 24 h after the oldest contact of the window; with a cap of 0 only a change of profile helps.
    const retryAfter = outcome.oldest === null ? null : Math.max(1, Math.ceil((outcome.oldest + DAY_MS - now) / 1_000));
    throw new AppError(
      'NEW_CONTACT_LIMIT',
      `This agent may write to ${limit} new contacts in 24 h and has done so; ${
        retryAfter === null ? 'its pacing profile allows none.' : `retry in ${retryAfter} s.`
      } Contacts it has exchanged messages with are not limited.`,
      {
        headers: retryAfter === null ? {} : { 'retry-after': String(retryAfter) },
        details: { limit, retryAfter },
      },
    );
  }

  /** The agent was deleted. */
  forget(agentId: string): void {
    this.known.delete(agentId);
  }

  private isKnown(agentId: string, jid: string): boolean {
    return this.known.get(agentId)?.has(jid) ?? false;
  }

  private remember(agentId: string, jid: string): void {
    let known = this.known.get(agentId);
    if (!known) {
      known = new Set();
      this.known.set(agentId, known);
    }
    if (known.size >= KNOWN_PER_AGENT) {
      const oldest = known.values().next().value;
      if (oldest !== undefined) known.delete(oldest);
    }
    known.add(jid);
  }
}
