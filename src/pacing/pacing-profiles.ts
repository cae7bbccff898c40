// Every paced agent's profile, in memory: the outbox asks for it on each dispatch and each submit (O(1), nothing for
// an agent that is not paced). A change made here is saved by the caller, applied here at once, and announced on
// `wamt_pacing` so that the other members of a cluster read the agent's row again.
import type { Database } from '../db/client.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { PacingRepository } from './pacing.repository.js';
import { type PacingProfile, type PacingSetting, resolvePacing, storedPacing } from './pacing.schemas.js';

const CHANNEL = 'wamt_pacing';

export interface PacingProfilesOptions {
  repository: Pick<PacingRepository, 'all' | 'find'>;
  logger: Logger;
  /** Other processes change settings too (a cluster on PostgreSQL): changes are announced and heard there. */
  shared?: Pick<Database, 'query' | 'listen'> | undefined;
}

export class PacingProfiles {
  private readonly profiles = new Map<string, PacingProfile>();
  private readonly listeners = new Set<(agentId: string) => void>();
  private unlisten: (() => Promise<void>) | undefined;

  constructor(private readonly options: PacingProfilesOptions) {}

  /** Loads every paced agent's setting, and (shared) starts listening for changes made elsewhere. */
  async start(): Promise<void> {
    await this.reloadAll();
    const { shared } = this.options;
    if (shared) {
      this.unlisten = await shared.listen(
        CHANNEL,
        (agentId) => void this.reload(agentId),
        () => void this.reloadAll().catch((err: unknown) => this.failed(err)),
      );
    }
  }

  async stop(): Promise<void> {
    await this.unlisten?.();
    this.unlisten = undefined;
  }

  /** The agent's profile; null when it is not paced. O(1). */
  profile(agentId: string): PacingProfile | null {
    return this.profiles.get(agentId) ?? null;
  }

  /** The setting was saved on the agent's row (or the agent deleted: 'off'): applied here, announced to the others. */
  changed(agentId: string, setting: PacingSetting): void {
    this.apply(agentId, setting);
    this.options.shared?.query('SELECT pg_notify($1, $2)', [CHANNEL, agentId]).catch((err: unknown) => {
      this.failed(err);
    });
  }

  /** Calls `listener` with the agent whose profile changed; returns an unsubscribe. */
  onChange(listener: (agentId: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private async reload(agentId: string): Promise<void> {
    try {
      const stored = await this.options.repository.find(agentId);
      this.apply(agentId, storedPacing(stored));
    } catch (err) {
      this.failed(err);
    }
  }

  private async reloadAll(): Promise<void> {
    const rows = await this.options.repository.all();
    const paced = new Set<string>();
    for (const row of rows) {
      paced.add(row.agentId);
      this.apply(row.agentId, storedPacing(row.pacing));
    }
    for (const agentId of [...this.profiles.keys()]) if (!paced.has(agentId)) this.apply(agentId, 'off');
  }

  private apply(agentId: string, setting: PacingSetting): void {
    const profile = resolvePacing(setting);
    if (profile) this.profiles.set(agentId, profile);
    else if (!this.profiles.delete(agentId)) return;
    for (const listener of this.listeners) listener(agentId);
  }

  private failed(err: unknown): void {
    this.options.logger.warn({ event: 'pacing.sync_failed', err: errorMessage(err) });
  }
}
