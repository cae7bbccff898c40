import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../observability/logger.js';
import { PreviewStore } from './preview-store.js';

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

  const make = (every?: (fn: () => void, ms: number) => () => void) =>
    new PreviewStore({ dir, logger: createLogger({ level: 'silent' }), now: () => now, every });

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

  it('runs the sweep every 30 minutes once started, and stops cleanly', async () => {
    const scheduled: Array<{ fn: () => void; ms: number; cancelled: boolean }> = [];
    const sut = make((fn, ms) => {
      const entry = { fn, ms, cancelled: false };
      scheduled.push(entry);
      return () => {
        entry.cancelled = true;
      };
    });
    const old = await sut.save(Buffer.from('old'), 'gif');
    await age(old, 30);
    sut.start();
    sut.start(); // idempotent
    expect(scheduled.map((s) => s.ms)).toEqual([30 * 60_000]);
    scheduled[0]?.fn();
    await sut.stop(); // waits for the sweep the tick started
    expect(await readdir(dir)).toEqual([]);
    expect(scheduled[0]?.cancelled).toBe(true);
  });

  it('sweeps nothing, quietly, before the directory exists', async () => {
    const sut = new PreviewStore({ dir: path.join(dir, 'missing'), logger: createLogger({ level: 'silent' }) });
    expect(await sut.sweep()).toBe(0);
  });
});
