// The admin API key: from ADMIN_API_KEY, or generated once and kept in DATA_DIR; on PostgreSQL, where several members
// of a cluster must agree on it, the first one's is kept in the database (cluster_settings) and used by all.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Database } from '../db/client.js';
import type { Logger } from '../observability/logger.js';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../private-files.js';

const ADMIN_KEY_FILE = 'admin-api-key';

export async function resolveAdminKey(
  configured: string | undefined,
  dataDir: string,
  logger: Logger,
  shared?: Pick<Database, 'query'>,
): Promise<string> {
  if (configured) return configured;
  if (!shared) return fileKey(dataDir, logger);
  const rows = await shared.query(`SELECT value FROM cluster_settings WHERE name = 'admin_api_key'`);
  const stored = rows[0]?.value;
  if (typeof stored === 'string' && stored.length >= 16) return stored;
  // The first member: its key (from its DATA_DIR, or a new one) becomes everyone's; a member racing it reads the winner.
  const candidate = await fileKey(dataDir, logger);
  await shared.query(
    `INSERT INTO cluster_settings (name, value) VALUES ('admin_api_key', $1) ON CONFLICT (name) DO NOTHING`,
    [candidate],
  );
  const winner = String(
    (await shared.query(`SELECT value FROM cluster_settings WHERE name = 'admin_api_key'`))[0]?.value ?? candidate,
  );
  if (winner !== candidate) {
    logger.warn(
      { event: 'auth.admin_key.shared' },
      'another member stored the admin API key first: this one uses it (cluster_settings), not its own',
    );
  }
  return winner;
}

async function fileKey(dataDir: string, logger: Logger): Promise<string> {
  const file = path.join(dataDir, ADMIN_KEY_FILE);
  try {
    const stored = (await readFile(file, 'utf8')).trim();
    if (stored.length >= 16) {
      await keepPrivate(file, logger);
      return stored;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const key = randomBytes(32).toString('base64url');
  await mkdir(dataDir, { recursive: true, mode: PRIVATE_DIR_MODE });
  await writeFile(file, `${key}\n`, { mode: PRIVATE_FILE_MODE });
  await keepPrivate(file, logger); // writeFile's mode applies only to a file it creates
  // Logged once, on the boot that creates it, so the operator can read it; later boots only name the file.
  logger.warn(
    { event: 'auth.admin_key.generated', file },
    `ADMIN_API_KEY is not set: generated an admin API key and saved it in ${file}. Key: ${key}`,
  );
  return key;
}

/** A key file left readable by others (copied in, written by an older version) becomes 0600. */
async function keepPrivate(file: string, logger: Logger): Promise<void> {
  try {
    await chmod(file, PRIVATE_FILE_MODE);
  } catch (err) {
    logger.warn(
      { event: 'storage.not_private', file, code: (err as NodeJS.ErrnoException).code },
      `could not make ${file} private (mode 0600)`,
    );
  }
}
