import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { anyAddress, publicAddressesOnly } from './address-policy.js';
import { MediaFetcher, type MediaFetcherOptions } from './media-fetch.js';

const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);
const MAX = 1024 * 1024;

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A local HTTP server that records the requests it gets. */
async function serve(handler: Handler): Promise<{ url: string; port: number; hits: string[]; server: Server }> {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, port, hits, server };
}

const routes: Record<string, Handler> = {
  '/image.png': (_req, res) => {
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': PNG.length });
    res.end(_req.method === 'HEAD' ? undefined : PNG);
  },
  '/huge': (req, res) => {
    res.writeHead(200, { 'content-length': 20 * 1024 * 1024 });
    if (req.method === 'HEAD') res.end();
    else res.end(Buffer.alloc(20 * 1024 * 1024));
  },
  '/liar': (req, res) => {
    // HEAD announces a small body; GET streams far more without a length.
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-length': 100 });
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'image/png' });
    const chunk = Buffer.alloc(64 * 1024);
    let sent = 0;
    const pump = () => {
      while (sent < 20 * 1024 * 1024) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    res.on('error', () => {});
    pump();
  },
  '/no-head': (req, res) => {
    if (req.method === 'HEAD') {
      res.writeHead(405);
      res.end();
      return;
    }
    res.writeHead(200);
    res.end(PNG);
  },
  '/missing': (_req, res) => {
    res.writeHead(404);
    res.end('nope');
  },
  '/hang': () => {},
};

describe('MediaFetcher', () => {
  let a: Awaited<ReturnType<typeof serve>>;
  let b: Awaited<ReturnType<typeof serve>>;
  const fetchers: MediaFetcher[] = [];
  const make = (options: Partial<MediaFetcherOptions> = {}) => {
    const fetcher = new MediaFetcher({ maxBytes: MAX, checkAddress: anyAddress, totalTimeoutMs: 5_000, ...options });
    fetchers.push(fetcher);
    return fetcher;
  };

  beforeAll(async () => {
    b = await serve((req, res) => (routes[req.url ?? ''] ?? routes['/missing'])?.(req, res));
    a = await serve((req, res) => {
      const hop = /^\/hop\/(\d+)$/.exec(req.url ?? '');
      if (hop) {
        const n = Number(hop[1]);
        res.writeHead(302, { location: n > 0 ? `/hop/${n - 1}` : '/image.png' });
        res.end();
        return;
      }
      if (req.url === '/to-b') {
        res.writeHead(302, { location: `${b.url}/image.png` });
        res.end();
        return;
      }
      if (req.url === '/to-file') {
        res.writeHead(302, { location: 'file:///etc/passwd' });
        res.end();
        return;
      }
      (routes[req.url ?? ''] ?? routes['/missing'])?.(req, res);
    });
  });
  afterAll(async () => {
    await Promise.all(fetchers.map((f) => f.close()));
    for (const s of [a, b]) {
      s.server.closeAllConnections();
      await new Promise((resolve) => s.server.close(resolve));
    }
  });

  it('downloads an image, after a HEAD', async () => {
    const before = a.hits.length;
    expect(await make().fetch(`${a.url}/image.png`)).toEqual(PNG);
    expect(a.hits.slice(before)).toEqual(['HEAD /image.png', 'GET /image.png']);
  });

  it('still GETs when the server refuses HEAD', async () => {
    expect(await make().fetch(`${a.url}/no-head`)).toEqual(PNG);
  });

  it.each([
    'http://127.0.0.1:9/x.png',
    'http://localhost:9/x.png',
    'http://[::1]:9/x.png',
    'http://10.0.0.1/x.png',
    'http://169.254.169.254/latest/meta-data/',
    'http://[::ffff:127.0.0.1]:9/x.png',
    'http://[fd00:ec2::254]/x',
    'http://0.0.0.0:9/x',
  ])('refuses %s before connecting', async (url) => {
    await expect(make({ checkAddress: publicAddressesOnly }).fetch(url)).rejects.toMatchObject({
      code: 'MEDIA_URL_FORBIDDEN',
    });
  });

  it('refuses a name when any of its addresses is private, without connecting to the others', async () => {
    const lookup = async () => [
      { address: '203.0.113.10', family: 4 }, // documentation range: never routed
      { address: '127.0.0.1', family: 4 },
    ];
    const allowOnlyTheFirst = (address: string) => address === '203.0.113.10';
    await expect(
      make({ lookup, checkAddress: allowOnlyTheFirst }).fetch('http://rebind.test/x.png'),
    ).rejects.toMatchObject({
      code: 'MEDIA_URL_FORBIDDEN',
    });
  });

  it('connects to the address it checked, not to a second lookup', async () => {
    let lookups = 0;
    const lookup = async () => {
      lookups += 1;
      return [{ address: '127.0.0.1', family: 4 }];
    };
    const port = a.port;
    const fetcher = make({ lookup, checkAddress: (address, p) => address === '127.0.0.1' && p === port });
    // media.test exists in no resolver: the fetch can only work if the socket used the address we checked.
    expect(await fetcher.fetch(`http://media.test:${port}/image.png`)).toEqual(PNG);
    expect(lookups).toBeGreaterThanOrEqual(1);
  });

  it.each(['file:///etc/passwd', 'gopher://127.0.0.1:70/', 'ftp://example.com/x.png', 'not a url'])(
    'refuses %s',
    async (url) => {
      await expect(make().fetch(url)).rejects.toMatchObject({ code: 'MEDIA_URL_FORBIDDEN', status: 400 });
    },
  );

  it('checks every redirect again: an allowed host cannot bounce the fetch to a private one', async () => {
    const port = a.port;
    const onlyServerA = (address: string, p: number) => address === '127.0.0.1' && p === port;
    const before = b.hits.length;
    await expect(make({ checkAddress: onlyServerA }).fetch(`${a.url}/to-b`)).rejects.toMatchObject({
      code: 'MEDIA_URL_FORBIDDEN',
    });
    expect(b.hits.length).toBe(before);
  });

  it('refuses a redirect to another scheme', async () => {
    await expect(make().fetch(`${a.url}/to-file`)).rejects.toMatchObject({ code: 'MEDIA_URL_FORBIDDEN' });
  });

  it('follows up to 3 redirects and fails on the 4th', async () => {
    expect(await make().fetch(`${a.url}/hop/2`)).toEqual(PNG);
    await expect(make().fetch(`${a.url}/hop/3`)).rejects.toMatchObject({ code: 'MEDIA_FETCH_FAILED', status: 422 });
  });

  it('answers MEDIA_FETCH_FAILED for an error status', async () => {
    await expect(make().fetch(`${a.url}/missing`)).rejects.toMatchObject({ code: 'MEDIA_FETCH_FAILED' });
  });

  it('answers MEDIA_FETCH_FAILED when the server does not answer in time', async () => {
    await expect(make({ totalTimeoutMs: 200 }).fetch(`${a.url}/hang`)).rejects.toMatchObject({
      code: 'MEDIA_FETCH_FAILED',
      message: expect.stringContaining('timed out'),
    });
  });

  it('refuses an announced 20 MB body from the HEAD, without a GET', async () => {
    const before = a.hits.length;
    await expect(make().fetch(`${a.url}/huge`)).rejects.toMatchObject({ code: 'MEDIA_TOO_LARGE', status: 413 });
    expect(a.hits.slice(before)).toEqual(['HEAD /huge']);
  });

  it('cuts off a body that is larger than its HEAD said', async () => {
    await expect(make().fetch(`${a.url}/liar`)).rejects.toMatchObject({ code: 'MEDIA_TOO_LARGE' });
  });
});
