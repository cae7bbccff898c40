// DATA_DIR holds logins, keys and queued messages: its folders and files are for the service's own user only.
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from './config.js';
import type { Logger } from './observability/logger.js';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** Creates the folder (and its parents) private; one that exists is made private too (mkdir's mode skips it). */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  await chmod(dir, PRIVATE_DIR_MODE);
}

/** Makes every folder and file under `dir` private; symbolic links are left alone. */
export async function restrictTree(dir: string): Promise<void> {
  await chmod(dir, PRIVATE_DIR_MODE);
  // Iterative: a deep tree cannot exhaust the stack.
  const pending = [dir];
  for (let current = pending.pop(); current !== undefined; current = pending.pop()) {
    for (const entry of await readdir(current, { withFileTypes: true })) {
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) {
        await chmod(full, PRIVATE_DIR_MODE);
        pending.push(full);
      } else if (entry.isFile()) {
        await chmod(full, PRIVATE_FILE_MODE);
      }
    }
  }
}

export type StorageConfig = Pick<Config, 'dataDir' | 'tempDir' | 'wwebjsAuthDir' | 'dbUrl'>;

/** Where the embedded database lives, when there is no DB_URL. */
export const embeddedDatabaseDir = (config: Pick<Config, 'dataDir'>): string => path.join(config.dataDir, 'pg');

/**
 * Boot, before anything is written: DATA_DIR, and the folders the service keeps in it, become 0700. The previews'
 * folder is left to be created (0700) on first use; the embedded database's and whatsapp-web's are made now, since
 * their libraries would create them open to all. A folder outside DATA_DIR (TEMP_DIR=/tmp, shared) is never changed.
 * A folder this user cannot change (owned by another user, a read-only mount) is reported, and the service goes on.
 */
export async function securePrivateDirs(config: StorageConfig, logger: Logger): Promise<void> {
  const { dataDir } = config;
  const inside = (dir: string) => {
    const relative = path.relative(dataDir, dir);
    return (
      relative === '' || (relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative))
    );
  };
  const created = [dataDir, config.wwebjsAuthDir, ...(config.dbUrl ? [] : [embeddedDatabaseDir(config)])];
  for (const dir of created) {
    await attempt(logger, dir, () =>
      inside(dir) ? ensurePrivateDir(dir) : mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE }),
    );
  }
  // Left by an earlier version, perhaps open to all: restricted if they are there (the sandbox's logins are in the
  // database now; an old DATA_DIR/sandbox still holds the phones it recorded).
  for (const dir of [config.tempDir, path.join(dataDir, 'sandbox')].filter(inside)) {
    await attempt(logger, dir, async () => {
      if (existsSync(dir)) await chmod(dir, PRIVATE_DIR_MODE);
    });
  }
}

/**
 * After the embedded database has started and migrated: PGlite writes the files of a new database readable, most of
 * them writable, by every user, and rewrites some at each start; they become 0600 (folders 0700).
 */
export async function secureEmbeddedDatabase(config: StorageConfig, logger: Logger): Promise<void> {
  if (config.dbUrl) return;
  const dir = embeddedDatabaseDir(config);
  await attempt(logger, dir, () => restrictTree(dir));
}

async function attempt(logger: Logger, dir: string, action: () => Promise<unknown>): Promise<void> {
  try {
    await action();
  } catch (err) {
    logger.warn(
      { event: 'storage.not_private', dir, code: (err as NodeJS.ErrnoException).code },
      `could not make ${dir} private (mode 0700): other users of this machine may read the logins and keys in it`,
    );
  }
}
