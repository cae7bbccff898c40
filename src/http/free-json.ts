// Free JSON that a route passes on unchanged (the /run pass-through fields): text only, and not nested without end.
import { z } from 'zod';
import { isText, NOT_TEXT } from './schemas.js';

/** Deeper than any real payload needs; shallow enough for every recursive JSON.stringify it meets on its way. */
export const MAX_JSON_DEPTH = 64;
/** The first levels name the place well enough; a message naming 50,000 of them would not help anyone. */
const MAX_PATH_SHOWN = 16;

export interface JsonProblem {
  path: (string | number)[];
  message: string;
}

interface Node {
  value: unknown;
  key: string | number;
  depth: number;
  parent: Node | null;
}

function pathOf(node: Node): (string | number)[] {
  const path: (string | number)[] = [];
  for (let at: Node | null = node; at?.parent; at = at.parent) path.push(at.key);
  return path.reverse().slice(0, MAX_PATH_SHOWN);
}

/**
 * The first place where a string or a key is not text, or where the value nests past MAX_JSON_DEPTH; null when there
 * is none. Iterative, each node pointing at its parent: a recursion could not follow a deep value, and copying the
 * path at every level would cost the square of the depth.
 */
export function findJsonProblem(value: unknown): JsonProblem | null {
  const pending: Node[] = [{ value, key: '', depth: 0, parent: null }];
  for (let node = pending.pop(); node; node = pending.pop()) {
    const current = node.value;
    if (typeof current === 'string') {
      if (!isText(current)) return { path: pathOf(node), message: NOT_TEXT };
      continue;
    }
    if (current === null || typeof current !== 'object') continue;
    if (node.depth >= MAX_JSON_DEPTH) {
      return { path: pathOf(node), message: `must not nest deeper than ${MAX_JSON_DEPTH} levels` };
    }
    const entries: [string | number, unknown][] = Array.isArray(current)
      ? current.map((element, i) => [i, element])
      : Object.entries(current);
    // The key itself is not named in the path: it is the bad text.
    if (entries.some(([key]) => typeof key === 'string' && !isText(key))) {
      return { path: pathOf(node), message: `has a key that ${NOT_TEXT}` };
    }
    // Pushed last to first, so the first problem in document order is the one reported.
    for (let i = entries.length - 1; i >= 0; i -= 1) {
      const [key, element] = entries[i] as [string | number, unknown];
      pending.push({ value: element, key, depth: node.depth + 1, parent: node });
    }
  }
  return null;
}

/** Any JSON value whose strings and keys are all text and whose depth is bounded; the issue names the place. */
export const freeJson = () =>
  z.unknown().superRefine((value, ctx) => {
    const problem = findJsonProblem(value);
    if (problem) ctx.addIssue({ code: 'custom', path: problem.path, message: problem.message });
  });
