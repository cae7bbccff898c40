// Requests about one session go to the member that runs it (docs/cluster.md). A member that does not own the agent
// forwards the request over HTTP to the owner's INSTANCE_URL, with the cluster secret, and hands its answer back
// unchanged; a forwarded request is handled where it lands, never forwarded again. A session nobody owns is taken by
// the member that received the request.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Agent, request as send } from 'undici';
import type { Database } from '../db/client.js';
import { AppError, errorMessage } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Cluster } from './cluster.js';

export const FORWARDED_BY = 'x-wamt-forwarded-by';
export const CLUSTER_SECRET_HEADER = 'x-wamt-cluster-secret';

/** What a forwarded request keeps of the original: the rest is hop-by-hop, or the forwarder's own. */
const KEPT_HEADERS = ['authorization', 'content-type', 'accept', 'idempotency-key'] as const;
/** What the answer keeps of the owner's headers; this member's hooks add the others (request id, security headers). */
const ANSWER_HEADERS = ['content-type', 'retry-after', 'cache-control'] as const;

/**
 * Where the request goes: the owner's address, with the path and query asked for and nothing else. A request line
 * may carry a whole URL (`POST http://elsewhere/sessions/a/qr`), which the router matches by its path: its host must
 * never be the one the request (and the cluster secret) goes to.
 */
export function ownerTarget(ownerUrl: string, requestUrl: string): URL {
  const asked = new URL(requestUrl, 'http://forwarded.invalid');
  const target = new URL(ownerUrl);
  target.pathname = asked.pathname;
  target.search = asked.search;
  return target;
}

export interface ForwarderOptions {
  cluster: Pick<Cluster, 'single' | 'instanceId' | 'epochOf' | 'ownerOf' | 'claim'>;
  /** Shared by every member (CLUSTER_SECRET, or the one the first member stored in the database). */
  secret: string;
  logger: Logger;
  /** The longest an owner may take to answer: the QR code wait, plus room. */
  timeoutMs: number;
}

export interface Forwarder {
  /**
   * Answers the request from the owner when another member owns the agent; resolves false when this member should
   * handle it (it owns the agent, took it just now, or the request was forwarded to it).
   */
  forward(request: FastifyRequest, reply: FastifyReply, agentId: string): Promise<boolean>;
  close(): Promise<void>;
}

export function createForwarder({ cluster, secret, logger, timeoutMs }: ForwarderOptions): Forwarder {
  const expected = Buffer.from(secret);
  const agent = new Agent({ connect: { timeout: 5_000 }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  const fromPeer = (request: FastifyRequest): boolean => {
    const presented = request.headers[CLUSTER_SECRET_HEADER];
    if (typeof presented !== 'string' || request.headers[FORWARDED_BY] === undefined) return false;
    const given = Buffer.from(presented);
    return given.length === expected.length && timingSafeEqual(given, expected);
  };

  return {
    async forward(request, reply, agentId) {
      if (cluster.single || fromPeer(request) || cluster.epochOf(agentId) !== null) return false;
      let owner = await cluster.ownerOf(agentId);
      if (!owner && (await cluster.claim(agentId))) return false;
      owner ??= await cluster.ownerOf(agentId);
      if (!owner || owner.instanceId === cluster.instanceId) return false;
      if (!owner.url) {
        throw new AppError(
          'SERVICE_UNAVAILABLE',
          `The instance that runs this session (${owner.instanceId}) has no INSTANCE_URL.`,
          {
            headers: { 'retry-after': '5' },
          },
        );
      }
      const headers: Record<string, string> = {
        [FORWARDED_BY]: cluster.instanceId,
        [CLUSTER_SECRET_HEADER]: secret,
        'x-request-id': request.id,
      };
      for (const name of KEPT_HEADERS) {
        const value = request.headers[name];
        if (typeof value === 'string') headers[name] = value;
      }
      const body = request.body === undefined || request.body === null ? null : JSON.stringify(request.body);
      if (body !== null) headers['content-type'] = 'application/json';
      let answer: Awaited<ReturnType<typeof send>>;
      try {
        answer = await send(ownerTarget(owner.url, request.url), {
          method: request.method as 'GET',
          headers,
          body,
          dispatcher: agent,
        });
      } catch (err) {
        logger.warn({ event: 'cluster.forward_failed', agentId, owner: owner.instanceId, err: errorMessage(err) });
        throw new AppError(
          'SERVICE_UNAVAILABLE',
          'The instance that runs this session cannot be reached; retry shortly.',
          {
            headers: { 'retry-after': '2' },
          },
        );
      }
      reply.code(answer.statusCode);
      for (const name of ANSWER_HEADERS) {
        const value = answer.headers[name];
        if (typeof value === 'string') reply.header(name, value);
      }
      // Streamed through as it arrives: an answer of any size (a sandbox sent log) costs this member no more than
      // its socket's buffers.
      await reply.send(answer.body);
      return true;
    },
    async close() {
      await agent.close();
    },
  };
}

/**
 * The secret members share to trust each other's forwarded requests: CLUSTER_SECRET when it is set, else one the
 * first member generated and stored in the database, which every member reads.
 */
export async function clusterSecret(database: Database, configured: string | undefined): Promise<string> {
  if (configured) return configured;
  const generated = randomBytes(32).toString('base64url');
  await database.query(
    `INSERT INTO cluster_settings (name, value) VALUES ('secret', $1) ON CONFLICT (name) DO NOTHING`,
    [generated],
  );
  const rows = await database.query(`SELECT value FROM cluster_settings WHERE name = 'secret'`);
  return String(rows[0]?.value ?? generated);
}

/**
 * A preHandler that sends the request to the agent's owner when that is another member. The agent id is the path's
 * `agentId`, or the body's (POST /sessions).
 */
export function toOwner(forwarder: Forwarder) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const fromPath = (request.params as { agentId?: unknown } | undefined)?.agentId;
    const fromBody = (request.body as { agentId?: unknown } | undefined)?.agentId;
    const agentId = typeof fromPath === 'string' ? fromPath : fromBody;
    if (typeof agentId !== 'string') return undefined;
    return (await forwarder.forward(request, reply, agentId)) ? reply : undefined;
  };
}
