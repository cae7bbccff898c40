// Fastify onRequest hooks for the two kinds of endpoint: sessions (admin key) and agents (agent key or admin key).
// They run before the body is read, so an unauthenticated request costs no parsing, no buffering and no validation
// (and learns nothing from schema errors); its body is discarded by Node as it arrives.

import { timingSafeEqual } from 'node:crypto';
import type { FastifyRequest, onRequestHookHandler } from 'fastify';
import { AppError, asError } from '../errors.js';
import { type AgentKeyStore, hashKey } from './agent-keys.js';
import type { FailureLimiter } from './auth-failures.js';
import { clientAddress } from './client-address.js';

export interface AuthOptions {
  adminKey: string;
  /** 'none' reproduces the seed: session endpoints take no authentication. */
  sessionsAuth: 'admin' | 'none';
  keys: AgentKeyStore;
  /** Failed authentications per client address and per agent; past the limit, 429 until the window ends. */
  failures: { byAddress: FailureLimiter; byAgent: FailureLimiter };
}

export interface Auth {
  /** Session endpoints. With `agentKey`, the agent's own key also opens its own session. */
  sessions(options?: { agentKey?: boolean }): onRequestHookHandler;
  /**
   * Agent endpoints: the agent's key (with lazy sync from api_keys) or the admin key. A callback hook: the common
   * case, a key already known, is decided without a promise.
   */
  agent(): onRequestHookHandler;
  /** Admin-only endpoints outside /sessions (sandbox control, dashboard events). */
  admin(): onRequestHookHandler;
  isAdminKey(presented: string | undefined): boolean;
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  return BEARER.exec(header)?.[1];
}

/** The raw path parameter (onRequest runs before validation): only compared, never used in a path or a query. */
function agentIdParam(request: FastifyRequest): string | undefined {
  const params = request.params as Record<string, unknown> | undefined;
  return typeof params?.agentId === 'string' ? params.agentId : undefined;
}

type Done = (err?: Error) => void;

export function createAuth({ adminKey, sessionsAuth, keys, failures }: AuthOptions): Auth {
  const adminHash = hashKey(adminKey);
  const isAdminHash = (presentedHash: Buffer) => timingSafeEqual(presentedHash, adminHash);
  const isAdminKey = (presented: string | undefined) => presented !== undefined && isAdminHash(hashKey(presented));

  /**
   * Decides one request, calling `done` at once for every case but a key the store must look up in api_keys.
   * A client address, or an agent, past its failure limit gets 429 before its key is even compared, so guessing
   * cannot go on through the wait. The admin key alone passes an agent's limit (it is at least 16 characters, and
   * the operator needs it to act during an attack); nothing passes an address's limit.
   */
  const gate = (request: FastifyRequest, agentKey: boolean, done: Done) => {
    const presented = bearerToken(request);
    if (presented === undefined) return done(unauthorized());
    const address = clientAddress(request.ip);
    const addressWait = failures.byAddress.retryAfter(address);
    if (addressWait > 0) return done(tooManyFailures(addressWait));
    const presentedHash = hashKey(presented);
    if (isAdminHash(presentedHash)) return done();
    const agentId = agentIdParam(request);
    // Only agents that exist are counted, so made-up agentIds cannot fill the table or share a count.
    const counted = agentId !== undefined && keys.has(agentId) ? agentId : undefined;
    const agentWait = counted === undefined ? 0 : failures.byAgent.retryAfter(counted);
    if (agentWait > 0) return done(tooManyFailures(agentWait));
    const refuse = (err: AppError) => {
      // A key that opens nothing is a guess; a valid key at the wrong door is not.
      if (!keys.agentOf(presented, presentedHash)) {
        failures.byAddress.fail(address);
        if (counted !== undefined) failures.byAgent.fail(counted);
      }
      done(err);
    };
    if (!agentKey || agentId === undefined) {
      return keys.agentOf(presented, presentedHash)
        ? done(new AppError('FORBIDDEN', 'This endpoint needs the admin key.'))
        : refuse(unauthorized());
    }
    if (keys.matches(agentId, presentedHash)) return done();
    keys.check(agentId, presented, presentedHash).then(
      (result) => {
        if (result === 'ok') done();
        else if (result === 'other_agent') done(new AppError('FORBIDDEN'));
        else refuse(unauthorized());
      },
      (err: unknown) => done(asError(err)),
    );
  };

  return {
    isAdminKey,
    sessions: ({ agentKey = false } = {}) =>
      function sessionsAuthHook(request, _reply, done) {
        if (sessionsAuth === 'none') return done();
        gate(request, agentKey, done);
      },
    agent: () =>
      function agentAuthHook(request, _reply, done) {
        gate(request, true, done);
      },
    admin: () =>
      function adminAuthHook(request, _reply, done) {
        gate(request, false, done);
      },
  };
}

const unauthorized = () => new AppError('UNAUTHORIZED');

const tooManyFailures = (retryAfterS: number) =>
  new AppError('TOO_MANY_AUTH_FAILURES', undefined, { headers: { 'retry-after': String(retryAfterS) } });
