// Preview copies of sent images in TEMP_DIR, and the job that deletes them once they are a day old.
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Clock, Timer } from '../clock.js';
import type { Logger } from '../observability/logger.js';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../private-files.js';

/** Only files with this prefix are ours: TEMP_DIR may be shared (/tmp), and the job must not touch the rest. */
const PREFIX = 'wa-preview-';
/**
 * Uploads and downloads wait in TEMP_DIR while their row commits, and are removed then; one a crash left behind is
 * removed by the same sweep.
 */
export const UPLOAD_PREFIX = 'wa-upload-';
export const DOWNLOAD_PREFIX = 'wa-download-';
const SWEPT = [PREFIX, UPLOAD_PREFIX, DOWNLOAD_PREFIX];

export interface PreviewStoreOptions {
  dir: string;
  logger: Logger;
  maxAgeMs?: number;
  intervalMs?: number;
  clock: Clock;
}

export class PreviewStore {
  private timer: Timer | undefined;
  private sweeping: Promise<number> | undefined;

  constructor(private readonly options: PreviewStoreOptions) {}

  async save(bytes: Buffer, extension: string): Promise<string> {
    // Private: TEMP_DIR may be shared (/tmp), and a preview is a customer's image.
    await mkdir(this.options.dir, { recursive: true, mode: PRIVATE_DIR_MODE });
    const file = path.join(this.options.dir, `${PREFIX}${randomUUID()}.${extension}`);
    await writeFile(file, bytes, { mode: PRIVATE_FILE_MODE });
    return file;
  }

  /** Deletes a preview whose image was not accepted after all. */
  async remove(file: string): Promise<void> {
    await rm(file, { force: true });
  }

  /** Starts the cleanup job: every 30 min, previews older than 24 h go. */
  start(): void {
    if (this.timer) return;
    this.timer = this.options.clock.setInterval(
      () => {
        void this.sweep();
      },
      this.options.intervalMs ?? 30 * 60_000,
      { background: true },
    );
  }

  /** Stops the job and waits for a sweep in progress. */
  async stop(): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    await this.sweeping;
  }

  /** Deletes our previews older than maxAgeMs; returns how many. One sweep at a time. */
  sweep(): Promise<number> {
    this.sweeping ??= this.runSweep().finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  private async runSweep(): Promise<number> {
    const { dir, logger } = this.options;
    const cutoff = this.options.clock.now() - (this.options.maxAgeMs ?? 24 * 3_600_000);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return 0; // nothing saved yet
    }
    let removed = 0;
    for (const name of names) {
      if (!SWEPT.some((prefix) => name.startsWith(prefix))) continue;
      const file = path.join(dir, name);
      try {
        if ((await stat(file)).mtimeMs < cutoff) {
          await rm(file, { force: true });
          removed += 1;
        }
      } catch (err) {
        logger.warn({ event: 'preview.cleanup.error', file, err: String(err) });
      }
    }
    if (removed > 0) logger.info({ event: 'preview.cleanup', removed });
    return removed;
  }
}
