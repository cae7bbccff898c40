// Finds and kills browser processes still running on a profile directory, the last line of defence against leaks.
import { readdir, readFile } from 'node:fs/promises';

/**
 * The pids of processes whose command line matches (Linux /proc). Elsewhere it finds nothing: the adapter then
 * relies on the library's destroy() alone.
 */
export async function findProcesses(matches: string | ((args: string[]) => boolean)): Promise<number[]> {
  const test = typeof matches === 'string' ? (args: string[]) => args.join(' ').includes(matches) : matches;
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
        if (cmdline !== '' && test(cmdline.split('\0'))) found.push(pid);
      } catch {
        // The process ended while we looked.
      }
    }),
  );
  return found.sort((a, b) => a - b);
}

/**
 * Kills every process started on exactly this profile. Chromium's children all carry `--user-data-dir`, so this also
 * catches the renderers of a browser that puppeteer lost track of (a launch that finished after destroy()). The
 * flag is compared whole: `session-a` must not match the profile of an agent named `a-b`.
 */
export async function killBrowsersOnProfile(userDataDir: string): Promise<number[]> {
  const flag = `--user-data-dir=${userDataDir}`;
  const pids = await findProcesses((args) => args.includes(flag));
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  return pids;
}
