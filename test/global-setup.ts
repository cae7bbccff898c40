// Runs once before the suite: builds dist/ (tsc, incremental), so that the tests of real processes (shutdown,
// crashes) start `node dist/main.js`, as users run it, on the code under test.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

export default function setup(): void {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const build = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { encoding: 'utf8' });
  // tsc emits despite type errors, which `npm run typecheck` reports; only a build that emitted nothing stops here.
  if (build.status !== 0 && !existsSync('dist/main.js')) {
    throw new Error(`npm run build failed:\n${build.stdout}${build.stderr}`);
  }
}
