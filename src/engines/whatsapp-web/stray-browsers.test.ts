import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { findProcesses, killBrowsersOnProfile } from './stray-browsers.js';

describe.skipIf(process.platform !== 'linux')('killBrowsersOnProfile (Linux /proc)', () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
  });

  /** A process that looks like a browser on `profile`, for as long as the test needs. */
  const fakeBrowser = async (profile: string) => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)', '--', `--user-data-dir=${profile}`]);
    children.push(child);
    await once(child, 'spawn');
    return child;
  };

  it('kills the processes on exactly that profile and spares a profile whose name merely starts the same', async () => {
    const base = `/tmp/wamt-stray-${process.pid}-${Date.now()}`;
    const mine = await fakeBrowser(`${base}/session-a`);
    const other = await fakeBrowser(`${base}/session-a-b`);
    const exited = once(mine, 'exit');
    const killed = await killBrowsersOnProfile(`${base}/session-a`);
    expect(killed).toEqual([mine.pid]);
    const [, signal] = await exited;
    expect(signal).toBe('SIGKILL');
    expect(await findProcesses(`${base}/session-a-b`)).toEqual([other.pid]);
  });

  it('finds nothing, and kills nothing, when no process uses the profile', async () => {
    expect(await killBrowsersOnProfile(`/tmp/wamt-stray-none-${Date.now()}`)).toEqual([]);
  });
});
