// Inbound files on this member's disk (MEDIA_STORE_DIR): streamed in under a size cap, one row each, purged by age.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type ReadStream } from 'node:fs';
import { readdir, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Clock } from '../clock.js';
import type { MediaDownload, MediaKind } from '../engines/engine.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { ensurePrivateDir, PRIVATE_FILE_MODE } from '../private-files.js';
import type { DownloadSlots } from './download-slots.js';
import { downloadCap } from './media-limits.js';
import type { MediaFileRow, MediaStoreRepository } from './media-store.repository.js';

/** `type/subtype`, then `; name=value` parameters (a value a token or a quoted string of printable ASCII). */
const MIME_TYPE = /^[\w.+-]+\/[\w.+-]+(?:\s*;\s*[\w.+-]+=(?:[\w.+-]+|"[\x20\x21\x23-\x5b\x5d-\x7e]*"))*$/;

/**
 * The type a file was received with, if it is one a Content-Type header can carry (`type/subtype`, parameters
 * allowed); anything else, as a sender's own client may send, is `application/octet-stream`.
 */
export function safeMimeType(value: string | null | undefined): string {
  return value && value.length <= 255 && MIME_TYPE.test(value) ? value : 'application/octet-stream';
}

/** Why a file is not in the store: the AI gets the message with the attachment marked unavailable. */
export type UnavailableReason = 'store_full' | 'too_large' | 'download_failed' | 'unsupported';

export type SaveResult = { stored: true; file: MediaFileRow } | { stored: false; reason: UnavailableReason };

export interface SaveRequest {
  agentId: string;
  messageId: string;
  kind: MediaKind;
  /** What the message said of its file; the engine's download may know better. */
  mimeType: string | null;
  filename: string | null;
  declaredSize: number | null;
  /** Starts the engine's download; absent when the engine cannot download. */
  download: (() => Promise<MediaDownload>) | undefined;
}

export interface MediaStoreOptions {
  dir: string;
  /** MEDIA_STORE_MAX_MB: the bytes this member keeps at most; past it new downloads are refused. */
  maxTotalBytes: number;
  /** MEDIA_DOWNLOAD_MAX_MB: no file larger than this (each kind has a lower cap of its own). */
  maxDownloadBytes: number;
  repository: Pick<MediaStoreRepository, 'insert' | 'purgeBefore'>;
  slots: DownloadSlots;
  instanceId: string;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  /** The longest one download may take, slot wait excluded (60 s by default). */
  downloadTimeoutMs?: number;
}

const DOWNLOAD_TIMEOUT_MS = 60_000;

/** The id's first part is its creation time (base 36, fixed width), so the disk can be purged by name alone. */
const TIME_WIDTH = 9;
const ID_PATTERN = /^([0-9a-z]{9})[0-9a-f]{24}$/;
const TEMP_PREFIX = '.part-';

class TooLarge extends Error {
  constructor(readonly reason: 'store_full' | 'too_large') {
    super(reason);
  }
}

export class MediaStore {
  /** Bytes of the files in the folder, counted at boot and kept up to date (downloads under way included). */
  private used = 0;

  constructor(private readonly options: MediaStoreOptions) {}

  get dir(): string {
    return this.options.dir;
  }

  get usedBytes(): number {
    return this.used;
  }

  /** Creates the folder and counts what a previous run left in it (partial files are deleted). */
  async init(): Promise<void> {
    await ensurePrivateDir(this.options.dir);
    let used = 0;
    for (const name of await readdir(this.options.dir)) {
      const file = path.join(this.options.dir, name);
      if (name.startsWith(TEMP_PREFIX)) {
        await unlink(file).catch(() => {});
        continue;
      }
      used += await stat(file).then(
        (info) => (info.isFile() ? info.size : 0),
        () => 0,
      );
    }
    this.used = used;
    this.options.metrics.mediaStoreBytes.set(used);
  }

  /**
   * Downloads the file into the store, waiting for a download slot of the agent; never throws. The file is written
   * under a temporary name and renamed once complete, then its row is inserted.
   */
  async save(request: SaveRequest): Promise<SaveResult> {
    const { metrics } = this.options;
    const started = performance.now();
    const result = await this.tryToSave(request);
    metrics.mediaDownloads.inc({ outcome: result.stored ? 'stored' : result.reason });
    metrics.mediaDownloadSeconds.observe((performance.now() - started) / 1000);
    return result;
  }

  private async tryToSave(request: SaveRequest): Promise<SaveResult> {
    const { agentId, messageId, kind } = request;
    const logger = this.options.logger.child({ agentId, messageId });
    if (!request.download) return { stored: false, reason: 'unsupported' };
    const cap = downloadCap(kind, this.options.maxDownloadBytes);
    if (request.declaredSize !== null && request.declaredSize > cap) {
      logger.info({ event: 'media.too_large', kind, declaredSize: request.declaredSize, cap });
      return { stored: false, reason: 'too_large' };
    }
    if (this.used >= this.options.maxTotalBytes) return this.full(logger);
    const release = await this.options.slots.take(agentId);
    try {
      if (this.used >= this.options.maxTotalBytes) return this.full(logger);
      const createdAt = this.options.clock.now();
      const id = newMediaId(createdAt);
      const temp = path.join(this.options.dir, `${TEMP_PREFIX}${id}`);
      let written = 0;
      // An engine that never answers, or a stream that stalls, must not hold the slot (and the chat) for ever.
      const controller = new AbortController();
      const { signal } = controller;
      const timer = this.options.clock.setTimeout(
        () => controller.abort(new Error('the download timed out')),
        this.options.downloadTimeoutMs ?? DOWNLOAD_TIMEOUT_MS,
      );
      try {
        const download = await untilAborted(request.download(), signal);
        const hash = createHash('sha256');
        const meter = new Transform({
          transform: (chunk: Buffer, _encoding, done) => {
            written += chunk.length;
            this.used += chunk.length;
            if (written > cap) return done(new TooLarge('too_large'));
            if (this.used > this.options.maxTotalBytes) return done(new TooLarge('store_full'));
            hash.update(chunk);
            done(null, chunk);
          },
        });
        await pipeline(download.stream, meter, createWriteStream(temp, { mode: PRIVATE_FILE_MODE }), { signal });
        await rename(temp, path.join(this.options.dir, id));
        const row: MediaFileRow = {
          id,
          agentId,
          messageId,
          instanceId: this.options.instanceId,
          kind,
          mimeType: safeMimeType(download.mimeType ?? request.mimeType),
          filename: download.filename ?? request.filename,
          sizeBytes: written,
          sha256: hash.digest('hex'),
          createdAt: new Date(createdAt),
        };
        try {
          await this.options.repository.insert(row);
        } catch (err) {
          // Its bytes come off the count below, with the temporary file's (gone by now).
          await unlink(path.join(this.options.dir, id)).catch(() => {});
          throw err;
        }
        this.options.metrics.mediaStoreBytes.set(this.used);
        logger.debug({ event: 'media.stored', mediaId: id, kind, size: written });
        return { stored: true, file: row };
      } catch (err) {
        await this.remove(temp, written);
        if (err instanceof TooLarge) {
          if (err.reason === 'store_full') return this.full(logger);
          logger.info({ event: 'media.too_large', kind, cap });
          return { stored: false, reason: 'too_large' };
        }
        logger.warn({ event: 'media.download_failed', kind, err: errorMessage(err) });
        return { stored: false, reason: 'download_failed' };
      } finally {
        timer.cancel();
      }
    } finally {
      release();
    }
  }

  /** The stored file's bytes, when this member's disk holds it; null when it is not here. */
  async open(row: Pick<MediaFileRow, 'id'>): Promise<ReadStream | null> {
    if (!ID_PATTERN.test(row.id)) return null;
    const file = path.join(this.options.dir, row.id);
    const stream = createReadStream(file);
    return new Promise((resolve) => {
      stream.once('open', () => resolve(stream));
      stream.once('error', () => resolve(null));
    });
  }

  /**
   * Deletes the rows older than `cutoff` (every member's) and the files of this member's folder older than it (by the
   * time in their name, so files a previous run of this member left are purged too). Returns the files deleted.
   */
  async purgeBefore(cutoff: Date, signal?: AbortSignal): Promise<number> {
    await this.options.repository.purgeBefore(cutoff, signal);
    let deleted = 0;
    for (const name of await readdir(this.options.dir)) {
      const id = name.startsWith(TEMP_PREFIX) ? name.slice(TEMP_PREFIX.length) : name;
      const match = ID_PATTERN.exec(id);
      // A download under way writes its temporary file for a moment: only an old one is an orphan.
      if (!match?.[1] || Number.parseInt(match[1], 36) >= cutoff.getTime()) continue;
      const file = path.join(this.options.dir, name);
      const size = await stat(file).then(
        (info) => info.size,
        () => 0,
      );
      if (await this.remove(file, size)) deleted += 1;
    }
    this.options.metrics.mediaStoreBytes.set(this.used);
    return deleted;
  }

  private full(logger: Pick<Logger, 'warn'>): SaveResult {
    logger.warn(
      { event: 'media.store_full', usedBytes: this.used, maxBytes: this.options.maxTotalBytes },
      'the media store is full (MEDIA_STORE_MAX_MB): the file is not downloaded',
    );
    return { stored: false, reason: 'store_full' };
  }

  /** Deletes a file and takes its bytes off the count; false when it was not there. */
  private async remove(file: string, size: number): Promise<boolean> {
    try {
      await unlink(file);
      this.used = Math.max(0, this.used - size);
      return true;
    } catch {
      // A file that never got written still had its bytes counted while they streamed.
      this.used = Math.max(0, this.used - size);
      return false;
    }
  }
}

/** The promise's value, or a rejection once `signal` aborts; a stream that arrives too late is destroyed. */
function untilAborted(promise: Promise<MediaDownload>, signal: AbortSignal): Promise<MediaDownload> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      reject(signal.reason);
      void promise.then(
        (late) => late.stream.destroy(),
        () => {},
      );
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** Time first (so the purge can read it), then 96 random bits: unguessable, though the link's signature is the lock. */
function newMediaId(nowMs: number): string {
  return nowMs.toString(36).padStart(TIME_WIDTH, '0') + randomBytes(12).toString('hex');
}
