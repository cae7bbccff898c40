// DATA_DIR is for the service's user only: its folders 0700 and its files 0600, the embedded database's included.
import { chmod, lstat, mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createContainer } from '../src/container.js';
import { IMAGES } from '../src/messaging/__fixtures__/images.js';
import { createLogger } from '../src/observability/logger.js';
import { createTestDataDir, removeDir } from './helpers/app.js';

/** Every folder and file under dir, with its permission bits, relative to dir. */
async function modes(dir: string): Promise<Map<string, number>> {
  const found = new Map<string, number>([['.', (await lstat(dir)).mode & 0o777]]);
  const pending = [dir];
  for (let current = pending.pop(); current !== undefined; current = pending.pop()) {
    for (const entry of await readdir(current, { withFileTypes: true })) {
      const full = path.join(current, entry.name);
      found.set(path.relative(dir, full), (await lstat(full)).mode & 0o777);
      if (entry.isDirectory()) pending.push(full);
    }
  }
  return found;
}

describe('DATA_DIR permissions', () => {
  it('makes DATA_DIR 0700 at boot, and what the service writes in it 0700 (folders) and 0600 (files)', async () => {
    const dir = await createTestDataDir();
    // As an operator might have left it: a readable DATA_DIR, TEMP_DIR and key file.
    await chmod(dir, 0o755);
    await mkdir(path.join(dir, 'tmp'), { mode: 0o755 });
    await chmod(path.join(dir, 'tmp'), 0o755);
    await writeFile(path.join(dir, 'admin-api-key'), 'an-admin-key-of-old-0123456789\n', { mode: 0o644 });
    await chmod(path.join(dir, 'admin-api-key'), 0o644);
    const lines: string[] = [];
    const logger = createLogger({
      level: 'warn',
      destination: new Writable({
        write(chunk: Buffer, _encoding, callback) {
          lines.push(chunk.toString('utf8'));
          callback();
        },
      }),
    });
    // The embedded database in DATA_DIR/pg, as a deployment without DB_URL has it.
    const config = loadConfig({ NODE_ENV: 'test', DATA_DIR: dir, WA_ENGINE: 'sandbox', LOG_LEVEL: 'warn' });
    const container = await createContainer(config, { logger, collectProcessMetrics: false });
    const app = await buildApp(container);
    try {
      await container.start();
      const admin = { authorization: 'Bearer an-admin-key-of-old-0123456789' };
      const apikey = 'key-private-bot-0123456789';
      const created = await app.inject({
        method: 'POST',
        url: '/sessions',
        headers: admin,
        payload: { userId: 'u1', agentId: 'private-bot', agentName: 'Bot', apikey },
      });
      expect(created.statusCode).toBe(200);
      const scanned = await app.inject({
        method: 'POST',
        url: '/sandbox/agents/private-bot/scan',
        headers: admin,
        payload: {},
      });
      expect(scanned.statusCode).toBe(200);
      const media = await app.inject({
        method: 'POST',
        url: '/agents/private-bot/media',
        headers: { authorization: `Bearer ${apikey}` },
        payload: { to: '6281234567890', data: IMAGES.png.toString('base64') },
      });
      expect(media.statusCode).toBe(200);
      expect(media.json().data.previewPath).toContain(path.join(dir, 'tmp'));
    } finally {
      await app.close();
    }
    try {
      const found = await modes(dir);
      for (const sub of ['.', 'tmp', 'pg', 'wwebjs_auth', 'admin-api-key']) expect(found.has(sub), sub).toBe(true);
      // The sandbox keeps its logins in the database now, not in files.
      expect(found.has('sandbox'), 'sandbox').toBe(false);
      expect([...found.keys()].some((name) => name.startsWith('tmp/wa-preview-'))).toBe(true);
      // Nothing is open to the group or to others: folders 0700, files 0600 (the database's own files included).
      const wrong = [...found].filter(([, mode]) => (mode & 0o077) !== 0);
      expect(found.get('.')?.toString(8)).toBe('700');
      expect(found.get('admin-api-key')?.toString(8)).toBe('600');
      expect(wrong.map(([name, mode]) => `${name} ${mode.toString(8)}`)).toEqual([]);
      expect(lines.filter((line) => line.includes('storage.not_private'))).toEqual([]);
    } finally {
      await removeDir(dir);
    }
  }, 120_000);
});
