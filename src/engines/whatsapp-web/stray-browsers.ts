// Finds and kills browser processes still running on a profile directory, the last line of defence against leaks.
import { readdir, readFile } from 'node:fs/promises';

/**
 * The pids of processes whose command line mentions `needle` (Linux /proc). Elsewhere it finds nothing: the
 * adapter then relies on the library's destroy() alone.
 */
export async function findProcesses(needle: string): Promise<number[]> {
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return [];
  }
  const found: number[] = [];
  await Promise.all(
    entries.map(async (entry) => {
      const pid = Number(entry);
      if (!Number.isInteger(pid) || pid === process.pid) return;
      try {
        const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8');
        if (cmdline.replaceAll('\0', ' ').includes(needle)) found.push(pid);
      } catch {
        // The process ended while we looked.
      }
    }),
  );
  return found.sort((a, b) => a - b);
}

/**
 * Kills every browser process started on this profile. Chromium's children inherit `--user-data-dir`, so this also
 * catches the renderers of a browser that puppeteer lost track of (a launch that finished after destroy()).
 */
export async function killBrowsersOnProfile(userDataDir: string): Promise<number[]> {
  const pids = await findProcesses(`--user-data-dir=${userDataDir}`);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  return pids;
}
