import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../__fixtures__/fake-clock.js';
import type { MediaDownload } from '../engines/engine.js';
import { createMetrics } from '../observability/metrics.js';
import { DownloadSlots } from './download-slots.js';
import { MediaStore, type SaveRequest } from './media-store.js';
import type { MediaFileRow } from './media-store.repository.js';

const MIB = 1024 * 1024;

describe('MediaStore', () => {
  let dir: string;
  let rows: MediaFileRow[];
  let store: MediaStore;
  const clock = new FakeClock(Date.UTC(2026, 5, 1));

  const build = (maxTotalBytes = 4 * MIB, maxDownloadBytes = 64 * MIB, downloadTimeoutMs = 60_000) =>
    new MediaStore({
      dir,
      downloadTimeoutMs,
      maxTotalBytes,
      maxDownloadBytes,
      repository: {
        insert: async (row) => {
          rows.push(row);
        },
        purgeBefore: async (cutoff) => {
          const before = rows.length;
          rows = rows.filter((row) => row.createdAt >= cutoff);
          return before - rows.length;
        },
      },
      slots: new DownloadSlots({ perAgent: 2, total: 4 }),
      instanceId: 'member-1',
      clock,
      logger: pino({ level: 'silent' }),
      metrics: createMetrics({ perAgent: false, collectProcessMetrics: false }),
    });
  const request = (chunks: Buffer[], overrides: Partial<SaveRequest> = {}): SaveRequest => ({
    agentId: 'agent-1',
    messageId: 'MSG1',
    kind: 'audio',
    mimeType: 'audio/ogg',
    filename: null,
    declaredSize: null,
    download: async (): Promise<MediaDownload> => ({
      stream: Readable.from(chunks),
      mimeType: null,
      filename: null,
    }),
    ...overrides,
  });
  const files = async () => readdir(dir);

  beforeEach(async () => {
    dir = path.join(await mkdtemp(path.join(tmpdir(), 'wamt-media-')), 'media');
    rows = [];
    store = build();
    await store.init();
  });
  afterEach(async () => {
    await rm(path.dirname(dir), { recursive: true, force: true });
  });

  it('stores a file under its id with its size and hash, and counts its bytes', async () => {
    const result = await store.save(request([Buffer.from('Ogg'), Buffer.from('S data')]));
    expect(result.stored).toBe(true);
    if (!result.stored) return;
    expect(result.file).toMatchObject({ agentId: 'agent-1', messageId: 'MSG1', sizeBytes: 9, mimeType: 'audio/ogg' });
    expect(result.file.sha256).toBe(createHash('sha256').update('OggS data').digest('hex'));
    expect(await files()).toEqual([result.file.id]);
    expect(rows).toHaveLength(1);
    expect(store.usedBytes).toBe(9);
  });

  it("keeps a sender's type only when a Content-Type header can carry it", async () => {
    const typeOf = async (mimeType: string) => {
      const result = await store.save(request([Buffer.from('OggS')], { mimeType }));
      return result.stored ? result.file.mimeType : undefined;
    };
    expect(await typeOf('audio/ogg; codecs=opus')).toBe('audio/ogg; codecs=opus');
    expect(await typeOf('application/vnd.openxmlformats-officedocument.wordprocessingml.document')).toBe(
      'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
    );
    // What a modified client may send: a non-ASCII or control character, a line break, no subtype.
    for (const bad of ['image/jpeg✓', 'audio/ogg\u0001', 'text/plain\r\nset-cookie: a=b', 'audio', ''])
      expect(await typeOf(bad), bad).toBe('application/octet-stream');
  });

  it('refuses a file declared larger than its kind allows without downloading it', async () => {
    let asked = false;
    const result = await store.save(
      request([], {
        kind: 'sticker',
        declaredSize: 2 * MIB,
        download: async () => {
          asked = true;
          throw new Error('not expected');
        },
      }),
    );
    expect(result).toEqual({ stored: false, reason: 'too_large' });
    expect(asked).toBe(false);
  });

  it('cuts off a file that turns out larger than its cap, and leaves nothing behind', async () => {
    const store1 = build(64 * MIB, 1 * MIB);
    await store1.init();
    const result = await store1.save(request([Buffer.alloc(600 * 1024), Buffer.alloc(600 * 1024)]));
    expect(result).toEqual({ stored: false, reason: 'too_large' });
    expect(await files()).toEqual([]);
    expect(store1.usedBytes).toBe(0);
    expect(rows).toEqual([]);
  });

  it('reports a failed download (the engine, or its stream midway) and leaves nothing behind', async () => {
    const failing = async (): Promise<MediaDownload> => {
      throw new Error('gone');
    };
    expect(await store.save(request([], { download: failing }))).toEqual({ stored: false, reason: 'download_failed' });
    const broken = new Readable({ read() {} });
    broken.push(Buffer.alloc(1000));
    setImmediate(() => broken.destroy(new Error('socket hang up')));
    const midway = async (): Promise<MediaDownload> => ({ stream: broken, mimeType: null, filename: null });
    expect(await store.save(request([], { download: midway }))).toEqual({ stored: false, reason: 'download_failed' });
    expect(await store.save(request([], { download: undefined }))).toEqual({ stored: false, reason: 'unsupported' });
    expect(await files()).toEqual([]);
    expect(store.usedBytes).toBe(0);
  });

  it('gives up a download that hangs or stalls after its timeout, and leaves nothing behind', async () => {
    const slow = build(4 * MIB, 64 * MIB, 5_000);
    await slow.init();
    const never = slow.save(request([], { download: () => new Promise<MediaDownload>(() => {}) }));
    const stalled = new Readable({ read() {} });
    stalled.push(Buffer.alloc(100));
    const stalling = slow.save(
      request([], { download: async () => ({ stream: stalled, mimeType: null, filename: null }) }),
    );
    await clock.advance(5_000);
    expect(await never).toEqual({ stored: false, reason: 'download_failed' });
    expect(await stalling).toEqual({ stored: false, reason: 'download_failed' });
    expect(stalled.destroyed).toBe(true);
    expect(await files()).toEqual([]);
    expect(slow.usedBytes).toBe(0);
  });

  it('refuses new downloads once full, takes purged bytes off, and counts what a restart finds', async () => {
    const small = build(2 * MIB);
    await small.init();
    const first = await small.save(request([Buffer.alloc(MIB + 1)]));
    expect(first.stored).toBe(true);
    expect(await small.save(request([Buffer.alloc(MIB)]))).toEqual({ stored: false, reason: 'store_full' });
    expect(small.usedBytes).toBe(MIB + 1);

    // A restart counts the file already there.
    const again = build(2 * MIB);
    await again.init();
    expect(again.usedBytes).toBe(MIB + 1);

    // A purge with a cutoff before the file keeps it; one after deletes it and its row.
    await clock.advance(1_000);
    expect(await again.purgeBefore(new Date(clock.now() - 2_000))).toBe(0);
    expect(await again.purgeBefore(new Date(clock.now()))).toBe(1);
    expect(await files()).toEqual([]);
    expect(rows).toEqual([]);
    expect(again.usedBytes).toBe(0);
  });
});
