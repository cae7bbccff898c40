import { describe, expect, it } from 'vitest';
import { DownloadSlots } from './download-slots.js';

/** Lets the promise callbacks of granted slots run. */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('DownloadSlots', () => {
  it("keeps one agent to its own bound, and lets another agent's download past its waiting burst", async () => {
    const slots = new DownloadSlots({ perAgent: 2, total: 3 });
    const granted: string[] = [];
    const releases: Array<() => void> = [];
    const take = (agentId: string, label: string) =>
      void slots.take(agentId).then((release) => {
        granted.push(label);
        releases.push(release);
      });
    for (let i = 1; i <= 5; i++) take('busy', `busy-${i}`);
    take('quiet', 'quiet-1');
    await flush();
    // busy has its two; quiet's one comes before busy's third, although it asked later.
    expect(granted).toEqual(['busy-1', 'busy-2', 'quiet-1']);
    expect(slots.pending).toBe(3);

    releases[0]?.();
    releases[0]?.(); // a second release changes nothing
    await flush();
    expect(granted).toEqual(['busy-1', 'busy-2', 'quiet-1', 'busy-3']);
    expect(slots.pending).toBe(2);
  });

  it('holds every agent to the process-wide bound, in arrival order among those under their own', async () => {
    const slots = new DownloadSlots({ perAgent: 5, total: 2 });
    const granted: string[] = [];
    const releases: Array<() => void> = [];
    for (const agent of ['a', 'b', 'c', 'd']) {
      void slots.take(agent).then((release) => {
        granted.push(agent);
        releases.push(release);
      });
    }
    await flush();
    expect(granted).toEqual(['a', 'b']);
    releases[1]?.();
    await flush();
    expect(granted).toEqual(['a', 'b', 'c']);
  });
});
