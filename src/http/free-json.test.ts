import { describe, expect, it } from 'vitest';
import { findJsonProblem, MAX_JSON_DEPTH } from './free-json.js';

const nested = (depth: number, bottom: unknown = 'x'): unknown => {
  let value = bottom;
  for (let i = 0; i < depth; i += 1) value = i % 2 === 0 ? [value] : { a: value };
  return value;
};

describe('findJsonProblem: free JSON passed on to the AI backend', () => {
  it('takes ordinary JSON, emoji and control characters other than NUL included', () => {
    expect(findJsonProblem({ a: [1, true, null, 'ok 👍', { b: '\t\u0001' }], c: nested(MAX_JSON_DEPTH - 1) })).toBe(
      null,
    );
  });

  it('names the first string that is not text, and the object whose key is not', () => {
    expect(findJsonProblem({ a: ['fine', { b: 'x\u0000' }], z: '\ud800' })?.path).toEqual(['a', 1, 'b']);
    expect(findJsonProblem({ a: { 'k\udc00': 1 } })).toEqual({ path: ['a'], message: expect.stringContaining('key') });
  });

  it('refuses a value nested past the limit, quickly however deep, naming only its first levels', () => {
    expect(findJsonProblem(nested(MAX_JSON_DEPTH + 1))?.message).toContain(`${MAX_JSON_DEPTH} levels`);
    const deep = JSON.parse(`${'['.repeat(200_000)}${']'.repeat(200_000)}`);
    const started = performance.now();
    const problem = findJsonProblem(deep);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(problem?.path).toHaveLength(16);
  });
});
