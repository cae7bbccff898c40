// With the embedded database there is one process per DATA_DIR: a lock file holding the owner's pid keeps a second
// one out, with a message that says why, before it opens (and could damage) the embedded database.
import { readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';

export const LOCK_FILE = 'instance.lock';

export interface InstanceLock {
  readonly file: string;
  /** Removes the lock file, if it is still this process's. Idempotent. */
  release(): Promise<void>;
}

export class DataDirInUseError extends Error {
  constructor(
    readonly dataDir: string,
    readonly pid: number,
  ) {
    super(
      `DATA_DIR ${dataDir} is in use by another process of this service (pid ${pid}). With the embedded database ` +
        '(no DB_URL) only one process may use a DATA_DIR: stop the other process, give this one its own DATA_DIR, or ' +
        'set DB_URL to a PostgreSQL database to run several processes as a cluster. If no such process runs, delete ' +
        `${path.join(dataDir, LOCK_FILE)}.`,
    );
    this.name = 'DataDirInUseError';
  }
}

/**
 * Takes DATA_DIR/instance.lock, created exclusively. A lock whose process is gone (a crash) is taken over; so is one
 * holding this process's own pid, which can only be a predecessor's: a container restarted on the same volume often
 * gets the same pid. Throws DataDirInUseError while the process named in it runs.
 */
export async function lockDataDir(dataDir: string): Promise<InstanceLock> {
  const file = path.join(dataDir, LOCK_FILE);
  const content = `${process.pid}\n`;
  for (let attempt = 0; ; attempt++) {
    try {
      await writeFile(file, content, { flag: 'wx', mode: 0o600 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw err;
    }
    const holder = await readPid(file);
    if (holder !== null && holder !== process.pid && isAlive(holder)) throw new DataDirInUseError(dataDir, holder);
    // Stale (or still being written by a process starting at this very moment: the next attempt reads it again).
    if (holder !== null || attempt > 0) await unlink(file).catch(() => {});
  }
  let released = false;
  return {
    file,
    async release() {
      if (released) return;
      released = true;
      if ((await readPid(file)) === process.pid) await unlink(file).catch(() => {});
    },
  };
}

async function readPid(file: string): Promise<number | null> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
}

/** Signal 0 checks that the process exists; EPERM means it does, under another user. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
