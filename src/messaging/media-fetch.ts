// Downloads an image from a caller's URL without letting the URL reach internal networks (SSRF) or exhaust memory.
import { lookup as dnsLookup } from 'node:dns/promises';
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Agent, buildConnector, type Dispatcher, request } from 'undici';
import { AppError, errorMessage, isAppError } from '../errors.js';
import { PRIVATE_DIR_MODE } from '../private-files.js';
import type { AddressChecker } from './address-policy.js';

export type HostLookup = (hostname: string) => Promise<Array<{ address: string; family: number }>>;

export interface MediaFetcherOptions {
  maxBytes: number;
  /** Every address a host resolves to must pass; injected so tests can allow exactly one local server. */
  checkAddress: AddressChecker;
  /** DNS; injectable for tests. Defaults to the system resolver with every address returned. */
  lookup?: HostLookup;
  connectTimeoutMs?: number;
  /** Bound on the whole fetch: HEAD, redirects and the download. */
  totalTimeoutMs?: number;
  maxRedirects?: number;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Thrown from inside the connector, where undici expects a plain Error; mapped to MEDIA_URL_FORBIDDEN. */
class ForbiddenAddressError extends Error {
  override name = 'ForbiddenAddressError';
}

export class MediaFetcher {
  private readonly agent: Agent;

  constructor(private readonly options: MediaFetcherOptions) {
    this.agent = guardedAgent(options);
  }

  /** The image bytes at `url`, or an AppError: MEDIA_URL_FORBIDDEN, MEDIA_TOO_LARGE or MEDIA_FETCH_FAILED. */
  async fetch(url: string, maxBytes = this.options.maxBytes): Promise<Buffer> {
    return this.download(url, maxBytes, (body) => this.readLimited(body, maxBytes));
  }

  /**
   * Streams the file at `url` into `path` (created; the caller removes it), at most maxBytes, never whole in memory;
   * resolves with its size. Errors as fetch().
   */
  async fetchToFile(url: string, path: string, maxBytes: number): Promise<number> {
    return this.download(url, maxBytes, async (body) => {
      let size = 0;
      const limit = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          size += chunk.length;
          callback(size > maxBytes ? new AppError('MEDIA_TOO_LARGE') : null, chunk);
        },
      });
      // Only now: a refused URL leaves no folder behind.
      await mkdir(dirname(path), { recursive: true, mode: PRIVATE_DIR_MODE });
      await pipeline(body, limit, createWriteStream(path, { flags: 'wx', mode: 0o600 }));
      return size;
    });
  }

  private async download<T>(
    url: string,
    maxBytes: number,
    read: (body: Dispatcher.ResponseData['body']) => Promise<T>,
  ) {
    const start = checkScheme(url);
    const signal = AbortSignal.timeout(this.options.totalTimeoutMs ?? 30_000);
    try {
      await this.precheck(start, signal, maxBytes);
      const response = await this.follow('GET', start, signal);
      if (response.statusCode >= 400) {
        await response.body.dump();
        throw new AppError('MEDIA_FETCH_FAILED', `The media URL answered ${response.statusCode}.`);
      }
      this.assertLength(response.headers['content-length'], maxBytes);
      return await read(response.body);
    } catch (err) {
      throw toAppError(err);
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  /** HEAD first, so an announced oversize body is refused before a byte of it is downloaded. */
  private async precheck(url: URL, signal: AbortSignal, maxBytes: number): Promise<void> {
    const head = await this.follow('HEAD', url, signal);
    await head.body.dump();
    // Servers that refuse HEAD (405 and the like) still get their GET; the streamed limit protects that one.
    if (head.statusCode < 400) this.assertLength(head.headers['content-length'], maxBytes);
  }

  private async follow(method: 'HEAD' | 'GET', url: URL, signal: AbortSignal): Promise<Dispatcher.ResponseData> {
    const maxRedirects = this.options.maxRedirects ?? 3;
    let current = url;
    for (let hop = 0; ; hop++) {
      const response = await request(current, { method, dispatcher: this.agent, signal });
      if (!REDIRECTS.has(response.statusCode)) return response;
      await response.body.dump();
      const location = response.headers.location;
      if (hop >= maxRedirects) throw new AppError('MEDIA_FETCH_FAILED', 'The media URL redirected too many times.');
      if (typeof location !== 'string') throw new AppError('MEDIA_FETCH_FAILED', 'A redirect had no location.');
      // Each hop is checked again: the scheme here, the addresses in the connector.
      current = checkScheme(new URL(location, current).toString());
    }
  }

  private assertLength(header: string | string[] | undefined, maxBytes: number): void {
    const length = Number(Array.isArray(header) ? header[0] : header);
    if (Number.isFinite(length) && length > maxBytes) throw new AppError('MEDIA_TOO_LARGE');
  }

  /** Reads at most maxBytes; a missing or false Content-Length cannot get past this. */
  private async readLimited(body: Dispatcher.ResponseData['body'], maxBytes: number): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of body) {
      const buffer = chunk as Buffer;
      size += buffer.length;
      if (size > maxBytes) {
        body.destroy();
        throw new AppError('MEDIA_TOO_LARGE');
      }
      chunks.push(buffer);
    }
    return Buffer.concat(chunks, size);
  }
}

/**
 * An undici Agent whose connector resolves the name itself, checks every address, and connects to the checked one:
 * the socket never does a DNS lookup of its own, so a name cannot answer "public" to us and "private" to the socket.
 * Media downloads and webhook deliveries both go through one.
 */
export function guardedAgent(options: {
  checkAddress: AddressChecker;
  lookup?: HostLookup;
  connectTimeoutMs?: number;
}): Agent {
  const connect = buildConnector({ timeout: options.connectTimeoutMs ?? 5_000 });
  return new Agent({
    keepAliveTimeout: 1_000,
    connect: (connectOptions, callback) => {
      const port = Number(connectOptions.port) || (connectOptions.protocol === 'https:' ? 443 : 80);
      resolveChecked(connectOptions.hostname, port, options).then(
        // `host` keeps the name, so TLS still verifies the certificate for it (SNI), not for the IP.
        (address) => connect({ ...connectOptions, hostname: address }, callback),
        (err: Error) => callback(err, null),
      );
    },
  });
}

const systemLookup: HostLookup = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/** The first address of `hostname`, once every address it resolves to has passed the check. */
export async function resolveChecked(
  hostname: string,
  port: number,
  options: { checkAddress: AddressChecker; lookup?: HostLookup },
): Promise<string> {
  // A bracketed IPv6 literal, as URL.hostname gives it.
  const name = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  const addresses = isIP(name) ? [{ address: name, family: isIP(name) }] : await (options.lookup ?? systemLookup)(name);
  if (addresses.length === 0) throw new Error(`${name} did not resolve`);
  // All of them, not just the first: the one we would not check is the one an attacker would make us use.
  for (const { address } of addresses) {
    if (!options.checkAddress(address, port)) {
      throw new ForbiddenAddressError(`${name} resolves to a forbidden address`);
    }
  }
  return addresses[0]?.address ?? name;
}

/** Parses a media URL: 400 MEDIA_URL_FORBIDDEN unless it is http(s). Its addresses are checked at connect time. */
export function checkScheme(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new AppError('MEDIA_URL_FORBIDDEN', 'The media URL is not a valid URL.');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new AppError('MEDIA_URL_FORBIDDEN', 'The media URL must be http or https.');
  }
  return parsed;
}

function toAppError(err: unknown): AppError {
  if (isAppError(err)) return err;
  for (let cause: unknown = err; cause instanceof Error; cause = cause.cause) {
    if (cause instanceof ForbiddenAddressError) {
      return new AppError('MEDIA_URL_FORBIDDEN', 'The media URL points to a private or reserved address.');
    }
  }
  const reason =
    err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')
      ? 'timed out'
      : errorMessage(err);
  return new AppError('MEDIA_FETCH_FAILED', `The media URL could not be fetched: ${reason}.`, { cause: err });
}
