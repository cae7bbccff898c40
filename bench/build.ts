// The benchmarks measure the service as `npm start` runs it: compiled by tsc into dist/ (bench/run.ts builds it
// first). Run through tsx instead, every function expression gets a naming helper call of esbuild's, which costs
// the hot path about a fifth more CPU per request than the built code. Types still come from src/.
import { existsSync } from 'node:fs';

const DIST = new URL('../dist/', import.meta.url);

/** Imports `dist/<file>`, typed as its source module: `fromBuild<typeof import('../src/app.js')>('app.js')`. */
export async function fromBuild<T>(file: string): Promise<T> {
  const url = new URL(file, DIST);
  if (!existsSync(url)) throw new Error(`${url.pathname} is missing: run \`npm run build\` (npm run bench does)`);
  return (await import(url.href)) as T;
}
