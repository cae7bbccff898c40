import { describe, expect, it } from 'vitest';
import { extractReply } from './ai-reply.js';

describe('extractReply', () => {
  it.each([
    ['reply at the top level', { reply: 'a' }, 'a'],
    ['output at the top level', { output: 'b' }, 'b'],
    ['response at the top level', { response: 'c' }, 'c'],
    ['text at the top level', { text: 'd' }, 'd'],
    ['reply wins over output', { output: 'o', reply: 'r' }, 'r'],
    ['an empty reply falls through to output', { reply: '', output: 'o' }, 'o'],
    ['whitespace counts as empty', { reply: '  \n', text: 't' }, 't'],
    ['a non-string reply is skipped', { reply: 42, response: 'r' }, 'r'],
    ['under data', { data: { output: 'nested' } }, 'nested'],
    ['the top level wins over data', { text: 'top', data: { reply: 'nested' } }, 'top'],
    ['an empty top level falls through to data', { reply: '', data: { reply: 'nested' } }, 'nested'],
    ['no field', { status: 'ok' }, null],
    ['only empty strings', { reply: '', data: { output: ' ' } }, null],
    ['data that is not an object', { data: 'hello' }, null],
    ['null', null, null],
    ['an array', [{ reply: 'x' }], null],
    ['a bare string', 'hello', null],
  ])('%s', (_name, body, expected) => {
    expect(extractReply(body)).toBe(expected);
  });
});
