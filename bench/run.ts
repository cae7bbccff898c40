// `npm run bench`: runs every benchmark under bench/ in its own process, one after the other.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const BENCHES = ['memory', 'engine-memory', 'messages', 'inbound', 'inbound-media', 'failover', 'webhooks', 'uploads'];
const only = process.argv.slice(2);
// The benchmarks load the service from dist/, as `npm start` runs it (bench/build.ts).
const build = spawnSync('npm', ['run', 'build'], { stdio: 'inherit' });
if (build.status !== 0) process.exit(1);
let failed = 0;
for (const name of only.length > 0 ? only : BENCHES) {
  const file = `bench/${name}.ts`;
  if (!existsSync(file)) continue;
  process.stdout.write(`\n== bench/${name}.ts\n`);
  const result = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', file], { stdio: 'inherit' });
  if (result.status !== 0) failed += 1;
}
// The sections' tables are written unaligned; the project's formatter aligns them, as `npm run check` expects.
spawnSync('npx', ['biome', 'format', '--write', 'BENCHMARKS.md'], { stdio: 'inherit' });
process.exit(failed === 0 ? 0 : 1);
