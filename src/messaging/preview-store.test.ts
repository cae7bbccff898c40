import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../__fixtures__/fake-clock.js';
import { createLogger } from '../observability/logger.js';
import { DOWNLOAD_PREFIX, PreviewStore, UPLOAD_PREFIX } from './preview-store.js';

const HOUR = 3_600_000;

describe('PreviewStore', () => {
  let dir: string;
  const now = Date.parse('2026-11-25T12:00:00Z');
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'previews-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const make = (clock = new FakeClock(now)) =>
    new PreviewStore({ dir, logger: createLogger({ level: 'silent' }), clock });

  const age = async (file: string, hours: number) => {
    const at = new Date(now - hours * HOUR);
    await utimes(file, at, at);
  };

  it('saves a preview under TEMP_DIR and returns its path', async () => {
    const file = await make().save(Buffer.from('bytes'), 'png');
    expect(path.dirname(file)).toBe(dir);
    expect(file).toMatch(/\.png$/);
    expect(await readFile(file, 'utf8')).toBe('bytes');
  });

  it('sweeps previews older than 24 h and keeps younger ones and files that are not ours', async () => {
    const sut = make();
    const old = await sut.save(Buffer.from('old'), 'jpg');
    const fresh = await sut.save(Buffer.from('fresh'), 'jpg');
    const foreign = path.join(dir, 'someone-elses.jpg');
    await writeFile(foreign, 'keep');
    await age(old, 25);
    await age(fresh, 23);
    await age(foreign, 48);
    expect(await sut.sweep()).toBe(1);
    expect((await readdir(dir)).sort()).toEqual([path.basename(fresh), 'someone-elses.jpg'].sort());
  });

  it('sweeps uploads and downloads a crash left behind, after 24 h like previews', async () => {
    const sut = make();
    const upload = path.join(dir, `${UPLOAD_PREFIX}1`);
    const download = path.join(dir, `${DOWNLOAD_PREFIX}1`);
    const recent = path.join(dir, `${UPLOAD_PREFIX}2`);
    for (const file of [upload, download, recent]) await writeFile(file, 'bytes');
    await age(upload, 25);
    await age(download, 25);
    await age(recent, 1);
    expect(await sut.sweep()).toBe(2);
    expect(await readdir(dir)).toEqual([path.basename(recent)]);
  });

  it('runs the sweep every 30 minutes once started, and stops cleanly', async () => {
    const clock = new FakeClock(now);
    const sut = make(clock);
    const old = await sut.save(Buffer.from('old'), 'gif');
    await age(old, 30);
    sut.start();
    sut.start(); // idempotent
    expect(clock.pending()).toEqual([30 * 60_000]);
    await clock.advance(30 * 60_000 - 1);
    expect(await readdir(dir)).toEqual([path.basename(old)]);
    await clock.advance(1);
    await sut.stop(); // waits for the sweep the tick started
    expect(await readdir(dir)).toEqual([]);
    expect(clock.pending()).toEqual([]);
  });

  it('sweeps nothing, quietly, before the directory exists', async () => {
    const sut = new PreviewStore({
      dir: path.join(dir, 'missing'),
      logger: createLogger({ level: 'silent' }),
      clock: new FakeClock(now),
    });
    expect(await sut.sweep()).toBe(0);
  });
});
