import { once } from 'node:events';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { whenClosed } from './when-closed.js';

describe('whenClosed', () => {
  const app = Fastify();
  afterEach(async () => {
    await app.close();
  });

  it('runs at once for a client that went away before it was called, and on close otherwise', async () => {
    const calls: string[] = [];
    let arrived: () => void = () => {};
    const inHandler = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    let goOn: () => void = () => {};
    const clientGone = new Promise<void>((resolve) => {
      goOn = resolve;
    });
    app.get('/late', async (_request, reply) => {
      arrived();
      await clientGone; // an asynchronous step during which the client leaves
      whenClosed(reply, () => calls.push('late'));
      return 'never read';
    });
    app.get('/early', async (_request, reply) => {
      whenClosed(reply, () => calls.push('early'));
      return 'ok';
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;

    const late = request({ port, host: '127.0.0.1', path: '/late' });
    late.on('error', () => {});
    late.end();
    await inHandler;
    late.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(calls).toEqual([]);
    goOn();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(calls).toEqual(['late']);

    const early = request({ port, host: '127.0.0.1', path: '/early' });
    early.end();
    const [response] = (await once(early, 'response')) as [NodeJS.ReadableStream];
    response.resume();
    await once(response, 'end');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(calls).toEqual(['late', 'early']);
  });
});
