// Pacing (issue 17, item 3): per-agent profiles that make sends look like a person's, and the daily cap on new
// contacts. Wired into the outbox (its OutboxPacing port) and the sessions service (the setting); docs/pacing.md.
import type { Clock } from '../clock.js';
import type { Database } from '../db/client.js';
import type { Logger } from '../observability/logger.js';
import type { OutboxPacing } from '../outbox/outbox.ports.js';
import { NewContacts } from './new-contacts.js';
import { PacingRepository } from './pacing.repository.js';
import { PacingProfiles } from './pacing-profiles.js';

export interface PacingDeps {
  database: Database;
  clock: Clock;
  logger: Logger;
}

export interface Pacing {
  profiles: PacingProfiles;
  /** What the outbox asks. */
  outbox: OutboxPacing;
  /** Loads the profiles (boot), and on PostgreSQL hears the changes other members make. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The agent was deleted: its profile and its count of new contacts go. */
  forget(agentId: string): Promise<void>;
}

export function createPacing({ database, clock, logger }: PacingDeps): Pacing {
  const repository = new PacingRepository(database);
  const profiles = new PacingProfiles({
    repository,
    logger,
    shared: database.kind === 'postgres' ? database : undefined,
  });
  const contacts = new NewContacts({ repository, clock });
  return {
    profiles,
    outbox: {
      profile: (agentId) => profiles.profile(agentId),
      admit: (agentId, toJid, limit) => contacts.admit(agentId, toJid, limit),
      onChange: (listener) => profiles.onChange(listener),
    },
    start: () => profiles.start(),
    stop: () => profiles.stop(),
    async forget(agentId) {
      profiles.changed(agentId, 'off');
      contacts.forget(agentId);
      await repository.forget(agentId);
    },
  };
}
