// The admin API key: from ADMIN_API_KEY, or generated once and kept in DATA_DIR.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../observability/logger.js';

const ADMIN_KEY_FILE = 'admin-api-key';

export async function resolveAdminKey(
  configured: string | undefined,
  dataDir: string,
  logger: Logger,
): Promise<string> {
  if (configured) return configured;
  const file = path.join(dataDir, ADMIN_KEY_FILE);
  try {
    const stored = (await readFile(file, 'utf8')).trim();
    if (stored.length >= 16) return stored;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const key = randomBytes(32).toString('base64url');
  await mkdir(dataDir, { recursive: true });
  await writeFile(file, `${key}\n`, { mode: 0o600 });
  // Logged once, on the boot that creates it, so the operator can read it; later boots only name the file.
  logger.warn(
    { event: 'auth.admin_key.generated', file },
    `ADMIN_API_KEY is not set: generated an admin API key and saved it in ${file}. Key: ${key}`,
  );
  return key;
}
