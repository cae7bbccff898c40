// Fastify preHandlers for the two kinds of endpoint: sessions (admin key) and agents (agent key or admin key).

import { timingSafeEqual } from 'node:crypto';
import type { FastifyRequest, preHandlerAsyncHookHandler, preHandlerHookHandler } from 'fastify';
import { AppError, asError } from '../errors.js';
import { type AgentKeyStore, hashKey } from './agent-keys.js';

export interface AuthOptions {
  adminKey: string;
  /** 'none' reproduces the seed: session endpoints take no authentication. */
  sessionsAuth: 'admin' | 'none';
  keys: AgentKeyStore;
}

export interface Auth {
  /** Session endpoints. With `agentKey`, the agent's own key also opens its own session. */
  sessions(options?: { agentKey?: boolean }): preHandlerAsyncHookHandler;
  /**
   * Agent endpoints: the agent's key (with lazy sync from api_keys) or the admin key. A callback hook: the common
   * case, a key already known, is decided without a promise.
   */
  agent(): preHandlerHookHandler;
  /** Admin-only endpoints outside /sessions (sandbox control, dashboard events). */
  admin(): preHandlerAsyncHookHandler;
  isAdminKey(presented: string | undefined): boolean;
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  return BEARER.exec(header)?.[1];
}

function agentIdParam(request: FastifyRequest): string | undefined {
  const params = request.params as Record<string, unknown> | undefined;
  return typeof params?.agentId === 'string' ? params.agentId : undefined;
}

export function createAuth({ adminKey, sessionsAuth, keys }: AuthOptions): Auth {
  const adminHash = hashKey(adminKey);
  const isAdminHash = (presentedHash: Buffer) => timingSafeEqual(presentedHash, adminHash);
  const isAdminKey = (presented: string | undefined) => presented !== undefined && isAdminHash(hashKey(presented));

  const requireAdminOr = async (request: FastifyRequest, agentId: string | undefined) => {
    const presented = bearerToken(request);
    if (presented === undefined) throw unauthorized();
    await authorize(presented, hashKey(presented), agentId);
  };

  /** `presentedHash` is computed once per request, for every comparison. */
  const authorize = async (presented: string, presentedHash: Buffer, agentId: string | undefined) => {
    if (isAdminHash(presentedHash)) return;
    if (agentId === undefined) {
      throw keys.agentOf(presented, presentedHash)
        ? new AppError('FORBIDDEN', 'This endpoint needs the admin key.')
        : unauthorized();
    }
    const result = await keys.check(agentId, presented, presentedHash);
    if (result === 'ok') return;
    throw result === 'other_agent' ? new AppError('FORBIDDEN') : unauthorized();
  };

  return {
    isAdminKey,
    sessions: ({ agentKey = false } = {}) =>
      async function sessionsAuthHook(request) {
        if (sessionsAuth === 'none') return;
        await requireAdminOr(request, agentKey ? agentIdParam(request) : undefined);
      },
    agent: () =>
      function agentAuthHook(request, _reply, done) {
        const agentId = agentIdParam(request) ?? '';
        const presented = bearerToken(request);
        if (presented === undefined) return done(unauthorized());
        const presentedHash = hashKey(presented);
        // A key already known is decided here, without a promise; any other goes the asynchronous way.
        if (isAdminHash(presentedHash) || keys.matches(agentId, presentedHash)) return done();
        authorize(presented, presentedHash, agentId).then(
          () => done(),
          (err: unknown) => done(asError(err)),
        );
      },
    admin: () =>
      async function adminAuthHook(request) {
        await requireAdminOr(request, undefined);
      },
  };
}

const unauthorized = () => new AppError('UNAUTHORIZED');
