import { PassThrough } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { lazyChildLogger } from './lazy-logger.js';
import { createLogger } from './logger.js';

function capture(level: 'info' | 'debug') {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new PassThrough();
  destination.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
  });
  return { logger: createLogger({ level, destination }), lines };
}

describe('lazyChildLogger', () => {
  it('builds no pino child while nothing is logged at an enabled level', () => {
    const { logger, lines } = capture('info');
    const child = vi.spyOn(logger, 'child');
    const request = lazyChildLogger(logger, { traceId: 't-1' }, {});
    const agent = request.child({ agentId: 'bot' });
    agent.debug('not at this level');
    request.trace({ x: 1 }, 'nor this');
    expect(child).not.toHaveBeenCalled();
    expect(lines).toEqual([]);
    expect(agent.level).toBe('info');
  });

  it('logs with every binding of the chain, and redacts as pino does', async () => {
    const { logger, lines } = capture('info');
    const agent = lazyChildLogger(logger, { traceId: 't-2' }, {}).child({ agentId: 'bot' });
    agent.info({ event: 'x', token: 'secret-token' }, 'hello');
    agent.warn('second');
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines).toEqual([
      expect.objectContaining({ traceId: 't-2', agentId: 'bot', event: 'x', token: '[redacted]', msg: 'hello' }),
      expect.objectContaining({ traceId: 't-2', agentId: 'bot', level: 'warn', msg: 'second' }),
    ]);
  });

  it('follows a level set on it or on its options', async () => {
    const { logger, lines } = capture('info');
    const quiet = lazyChildLogger(logger, { traceId: 't-3' }, { level: 'error' });
    quiet.info('dropped');
    const loud = lazyChildLogger(logger, { traceId: 't-4' }, {});
    loud.level = 'debug';
    loud.debug('kept');
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines.map((l) => l.msg)).toEqual(['kept']);
    expect(quiet.level).toBe('error');
    expect(logger.level).toBe('info');
  });
});
