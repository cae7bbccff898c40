import { type ChildProcess, spawn } from 'node:child_process';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DataDirInUseError, LOCK_FILE, lockDataDir } from './instance-lock.js';

/** Another process that takes the lock through this module, says so, and then waits to be killed. */
function lockingProcess(dataDir: string): { child: ChildProcess; locked: Promise<void>; exited: Promise<void> } {
  const script = `
    const { lockDataDir } = await import(${JSON.stringify(path.resolve('src/cluster/instance-lock.ts'))});
    await lockDataDir(process.argv.at(-1));
    process.stdout.write('locked\\n');
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, dataDir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const locked = new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (data: Buffer) => {
      if (data.toString().includes('locked')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`the locking process exited (${code})`)));
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return { child, locked, exited };
}

describe('lockDataDir', () => {
  let dataDir: string;
  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'wamt-lock-'));
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('keeps a second process out while the first runs, and lets the next one in once it died', async () => {
    const first = lockingProcess(dataDir);
    try {
      await first.locked;
      const refused = await lockDataDir(dataDir).catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(DataDirInUseError);
      expect((refused as Error).message).toContain(`DATA_DIR ${dataDir} is in use by another process`);
      expect((refused as Error).message).toContain(`pid ${first.child.pid}`);
      expect((refused as Error).message).toContain('DB_URL');
    } finally {
      first.child.kill('SIGKILL');
      await first.exited;
    }
    // Killed: its lock file stays behind, naming a process that is gone.
    expect(await readFile(path.join(dataDir, LOCK_FILE), 'utf8')).toBe(`${first.child.pid}\n`);
    const lock = await lockDataDir(dataDir);
    expect(await readFile(lock.file, 'utf8')).toBe(`${process.pid}\n`);
    await lock.release();
    await expect(access(lock.file)).rejects.toThrow();
    await lock.release();
  }, 60_000);

  it("takes over a lock that holds this process's own pid (a predecessor restarted with the same pid)", async () => {
    await writeFile(path.join(dataDir, LOCK_FILE), `${process.pid}\n`);
    const lock = await lockDataDir(dataDir);
    expect(await readFile(lock.file, 'utf8')).toBe(`${process.pid}\n`);
    await lock.release();
  });

  it('takes over a lock file that names no process', async () => {
    await writeFile(path.join(dataDir, LOCK_FILE), 'garbage');
    const lock = await lockDataDir(dataDir);
    await lock.release();
  });

  it('leaves alone, on release, a lock another process took over meanwhile', async () => {
    const lock = await lockDataDir(dataDir);
    await writeFile(lock.file, '1\n');
    await lock.release();
    expect(await readFile(lock.file, 'utf8')).toBe('1\n');
  });
});
