// One agent's whatsapp-web login kept in the database: restored into LocalAuth's folder before the browser starts, and
// saved back once the session is ready, every few minutes while it runs, and when it stops.
import { randomUUID } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Clock, Timer } from '../../clock.js';
import type { Logger } from '../../observability/logger.js';
import { packProfile, unpackProfile } from './profile-archive.js';
import { errorMessage } from './session-helpers.js';
import type { WwebLoginsRepository } from './wweb-logins.repository.js';

/** In the profile folder: the generation of the row the folder was restored from or last saved to. */
const GENERATION_FILE = 'wamt-login-generation';

export interface ProfileSyncOptions {
  agentId: string;
  profileDir: string;
  logins: WwebLoginsRepository;
  clock: Clock;
  logger: Logger;
  saveIntervalMs: number;
}

export class ProfileSync {
  /** The row's generation this folder matches; null when no row is known. */
  private generation: string | null = null;
  private savedDigest: string | null = null;
  private writes: Promise<void> = Promise.resolve();
  /** Set by clear(): the login has ended, and no save may bring it back. */
  private cleared = false;
  /** Another process wrote or deleted the row: its copy wins, and this one stops saving. */
  private superseded = false;
  private timer: Timer | undefined;

  constructor(private readonly options: ProfileSyncOptions) {}

  /**
   * Makes the folder hold the database's login: unpacked from the row unless the folder is that generation already,
   * removed when the row it came from is gone (the login ended elsewhere). A folder that never came from the database
   * (LocalAuth's, from before logins moved) is kept, and saved once the session is ready.
   */
  async restore(): Promise<void> {
    const { agentId, profileDir, logins } = this.options;
    this.cleared = false;
    this.superseded = false;
    const local = await readGeneration(profileDir);
    const stored = await logins.load(agentId, local);
    if (!stored) {
      this.generation = null;
      if (local !== null) await removeProfile(profileDir);
      return;
    }
    this.generation = stored.generation;
    if (stored.data === null) return;
    await removeProfile(profileDir);
    this.savedDigest = await unpackProfile(stored.data, profileDir);
    await writeGeneration(profileDir, stored.generation);
  }

  /** Saves the folder's login when it changed since the last save. Never rejects: a failure is logged. */
  save(): Promise<void> {
    const write = this.writes
      .then(() => this.write())
      .catch((error: unknown) =>
        this.options.logger.warn({ event: 'engine.login.save_failed', err: errorMessage(error) }, 'login not saved'),
      );
    this.writes = write;
    return write;
  }

  /** Saves every `saveIntervalMs` until stopSaving(): what a crash would lose is at most that much. */
  keepSaving(): void {
    this.stopSaving();
    this.timer = this.options.clock.setInterval(() => void this.save(), this.options.saveIntervalMs, {
      background: true,
    });
  }

  stopSaving(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** Waits for the saves under way. */
  idle(): Promise<void> {
    return this.writes;
  }

  /** Ends the login: saves under way finish, the row goes, and later saves are dropped. */
  async clear(): Promise<void> {
    this.stopSaving();
    this.cleared = true;
    await this.writes;
    await this.options.logins.delete(this.options.agentId);
    this.generation = null;
    this.savedDigest = null;
  }

  private async write(): Promise<void> {
    const { agentId, profileDir, logins, logger } = this.options;
    if (this.cleared || this.superseded) return;
    const packed = await packProfile(profileDir);
    if (!packed || packed.digest === this.savedDigest) return;
    const generation = randomUUID();
    if (!(await logins.save(agentId, packed.data, this.generation, generation))) {
      this.superseded = true;
      logger.warn(
        { event: 'engine.login.superseded' },
        'another process changed or removed this login since it was loaded here: this copy is not saved',
      );
      return;
    }
    this.generation = generation;
    this.savedDigest = packed.digest;
    await writeGeneration(profileDir, generation);
    logger.debug({ event: 'engine.login.saved', bytes: packed.data.length, files: packed.files }, 'login saved');
  }
}

/** A folder with no generation file (or none at all) did not come from the database. */
export async function readGeneration(profileDir: string): Promise<string | null> {
  try {
    return (await readFile(path.join(profileDir, GENERATION_FILE), 'utf8')).trim() || null;
  } catch {
    return null;
  }
}

async function writeGeneration(profileDir: string, generation: string): Promise<void> {
  await writeFile(path.join(profileDir, GENERATION_FILE), generation, { mode: 0o600 });
}

export function removeProfile(profileDir: string): Promise<void> {
  return rm(profileDir, { recursive: true, force: true, maxRetries: 4 });
}
