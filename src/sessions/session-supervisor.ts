// Keeps each agent's engine session alive: starts it, follows its events, persists transitions, reconnects with backoff.
import { EventEmitter } from 'node:events';
import QRCode from 'qrcode';
import type { Clock, Timer } from '../clock.js';
import { isDatabaseUnavailable } from '../db/availability.js';
import type {
  Engine,
  EngineRegistry,
  EngineSession,
  IdentityPair,
  InboundMessage,
  MessageAck,
} from '../engines/engine.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { EngineName } from '../whatsapp/engine-names.js';
import type { SessionsRepository } from './sessions.repository.js';

export type LiveStateName =
  | 'idle'
  | 'starting'
  | 'qr'
  | 'authenticated'
  | 'connected'
  | 'reconnecting'
  | 'disconnected'
  | 'logged_out'
  | 'auth_failed'
  | 'stopped'
  /** No attempt could begin (no browser, an unreadable login store): stopped until the operator acts. */
  | 'unavailable'
  /**
   * Connected on a member that handed it over (a rebalance, a shutdown; docs/cluster.md): the next owner resumes it
   * from its stored login. Never a local state; sends are accepted meanwhile and go out once it runs again.
   */
  | 'moving';

export interface QrCode {
  text: string;
  png: Buffer;
  updatedAt: Date;
}

export interface LiveState {
  isReady: boolean;
  hasClient: boolean;
  sessionState: LiveStateName;
  qr: { contentType: 'image/png'; base64: string } | null;
  qrUpdatedAt: string | null;
  pairingCode: string | null;
  me: string | null;
  lastError: string | null;
}

interface Live {
  agentId: string;
  engine: Engine;
  session: EngineSession | null;
  state: LiveStateName;
  qr: QrCode | null;
  pairingCode: string | null;
  me: string | null;
  lid: string | null;
  lastError: string | null;
  attempt: number;
  reconnectTimer: Timer | undefined;
  counted: boolean;
  /** Status writes and teardowns of this agent, chained so they happen in the order the events came. */
  pending: Promise<void>;
  /** This live's teardowns, one after the other: a second caller waits for the first one's session to close. */
  closing: Promise<void>;
  /** How many times stop() was called on it: a start that waited meanwhile does not start it again. */
  stops: number;
}

export interface SupervisorEvents {
  /** Anything in an agent's live state changed. */
  change: [agentId: string];
  ready: [agentId: string];
  qr: [agentId: string];
  /** The session could not even begin to start; its lastError says why. */
  unavailable: [agentId: string];
  message: [agentId: string, message: InboundMessage];
  /** A receipt WhatsApp gave for a message the agent sent. */
  ack: [agentId: string, ack: MessageAck];
  /** LID and phone pairs the engine learned outside a message. */
  identities: [agentId: string, pairs: IdentityPair[]];
}

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  random: () => number;
}

export interface SupervisorOptions {
  engines: EngineRegistry;
  repo: SessionsRepository;
  logger: Logger;
  metrics: Metrics;
  backoff?: Partial<BackoffOptions>;
  clock: Clock;
  /** Renders a QR code's text as a PNG; injected so tests can finish a rendering when they choose. */
  renderQr?: (text: string) => Promise<Buffer>;
}

const renderPng = (text: string): Promise<Buffer> => QRCode.toBuffer(text, { type: 'png', margin: 2, width: 320 });

/** What a wait for a QR code ends with. */
export type QrWait = 'qr' | 'connected' | 'unavailable' | 'timeout';

export class SessionSupervisor extends EventEmitter<SupervisorEvents> {
  private readonly lives = new Map<string, Live>();
  private readonly backoff: BackoffOptions;
  private readonly clock: Clock;
  private readonly renderQr: (text: string) => Promise<Buffer>;

  constructor(private readonly options: SupervisorOptions) {
    super();
    this.setMaxListeners(0);
    this.backoff = { baseMs: 2_000, maxMs: 300_000, random: Math.random, ...options.backoff };
    this.clock = options.clock;
    this.renderQr = options.renderQr ?? renderPng;
  }

  engine(name: EngineName): Engine | undefined {
    return this.options.engines.get(name);
  }

  /**
   * Deletes whatever login any engine still stores under `agentId`: for an agent id taken by a new agent, a login
   * left by an earlier agent of that id (its deletion could not clear it) must not log the new one in.
   */
  async clearStoredLogins(agentId: string): Promise<void> {
    await Promise.all([...this.options.engines.values()].map((engine) => engine.clearStoredLogin(agentId)));
  }

  /** Each engine this process runs: whether a session of it could begin to start now, and if not, why. */
  async engineAvailability(): Promise<Record<string, { available: boolean; reason: string | null }>> {
    const entries = await Promise.all(
      [...this.options.engines].map(async ([name, engine]) => {
        const reason = (await engine.availability?.().catch((err: unknown) => errorMessage(err))) ?? null;
        return [name, { available: reason === null, reason }] as const;
      }),
    );
    return Object.fromEntries(entries);
  }

  /** The engine session of a connected agent, or null. */
  readySession(agentId: string): EngineSession | null {
    const live = this.lives.get(agentId);
    return live?.state === 'connected' ? live.session : null;
  }

  identity(agentId: string): { me: string; lid: string | null } | null {
    const live = this.lives.get(agentId);
    return live?.state === 'connected' && live.me ? { me: live.me, lid: live.lid } : null;
  }

  /** Whether this process runs (or ran, and has not forgotten) the agent's session: its live state is here. */
  knows(agentId: string): boolean {
    return this.lives.has(agentId);
  }

  /** The running engine session, connected or not. */
  session(agentId: string): EngineSession | null {
    return this.lives.get(agentId)?.session ?? null;
  }

  /** Resolves once the writes and teardowns caused by events so far are done. */
  async settled(agentId: string): Promise<void> {
    await this.lives.get(agentId)?.pending;
  }

  qr(agentId: string): QrCode | null {
    return this.lives.get(agentId)?.qr ?? null;
  }

  isRunning(agentId: string): boolean {
    const state = this.lives.get(agentId)?.state;
    return state !== undefined && !['idle', 'stopped', 'logged_out', 'auth_failed', 'unavailable'].includes(state);
  }

  snapshot(agentId: string): LiveState {
    const live = this.lives.get(agentId);
    return {
      isReady: live?.state === 'connected',
      hasClient: Boolean(live?.session),
      sessionState: live?.state ?? 'idle',
      qr: live?.qr ? { contentType: 'image/png', base64: live.qr.png.toString('base64') } : null,
      qrUpdatedAt: live?.qr?.updatedAt.toISOString() ?? null,
      pairingCode: live?.pairingCode ?? null,
      me: live?.me ?? null,
      lastError: live?.lastError ?? null,
    };
  }

  /** Starts the agent's session unless one is already running. */
  async start(agentId: string, engine: Engine): Promise<void> {
    const existing = this.lives.get(agentId);
    if (existing && this.isRunning(agentId) && existing.engine === engine) return;
    if (existing) {
      const stops = existing.stops;
      await this.teardown(existing);
      // Another start, or a stop, went ahead while this one waited for the old session to close: that stands, and no
      // second session starts on the same login behind its back (nor one after a shutdown stopped everything).
      if (this.lives.get(agentId) !== existing || existing.stops !== stops) return;
    }
    const live: Live = {
      agentId,
      engine,
      session: null,
      state: 'starting',
      qr: null,
      pairingCode: null,
      me: null,
      lid: null,
      lastError: null,
      attempt: existing?.attempt ?? 0,
      reconnectTimer: undefined,
      counted: false,
      pending: existing?.pending ?? Promise.resolve(),
      closing: Promise.resolve(),
      stops: 0,
    };
    this.lives.set(agentId, live);
    await this.connect(live);
  }

  /** Stops the agent's running session, if any. With `logout`, the login ends and its stored auth is deleted. */
  async stop(agentId: string, { logout, forget }: { logout: boolean; forget?: boolean }): Promise<void> {
    const live = this.lives.get(agentId);
    if (live) live.stops += 1;
    if (live) await this.teardown(live, logout);
    if (live) {
      live.state = 'stopped';
      live.qr = null;
      live.pairingCode = null;
    }
    if (forget) this.lives.delete(agentId);
    this.emit('change', agentId);
  }

  async stopAll(concurrency: number): Promise<void> {
    const agents = [...this.lives.keys()];
    await runWithConcurrency(agents, concurrency, (agentId) => this.stop(agentId, { logout: false }));
  }

  /**
   * Starts the session unless it runs (with the engine `engine()` gives), then waits for a QR code ('qr', at once when
   * one shows already), for the session to connect ('connected'), or for its start to fail before it could begin
   * ('unavailable'). Nothing it listens with outlives it.
   */
  async startForQr(agentId: string, timeoutMs: number, engine: () => Engine): Promise<QrWait> {
    const done = new AbortController();
    const waiting = this.waitForQrOrReady(agentId, timeoutMs, done.signal);
    try {
      if (!this.isRunning(agentId)) await this.start(agentId, engine());
      return this.qr(agentId) ? 'qr' : await waiting;
    } finally {
      done.abort();
    }
  }

  /**
   * Waits for the next QR code (resolves 'qr'), for the session to connect ('connected'), or for its start to fail
   * before it could begin ('unavailable'); 'timeout' after `timeoutMs`, or at once when `signal` aborts.
   */
  waitForQrOrReady(agentId: string, timeoutMs: number, signal?: AbortSignal): Promise<QrWait> {
    return new Promise((resolve) => {
      const done = (outcome: QrWait) => {
        timer.cancel();
        this.off('qr', onQr);
        this.off('ready', onReady);
        this.off('unavailable', onUnavailable);
        resolve(outcome);
      };
      const onQr = (id: string) => id === agentId && done('qr');
      const onReady = (id: string) => id === agentId && done('connected');
      const onUnavailable = (id: string) => id === agentId && done('unavailable');
      const timer = this.clock.setTimeout(() => done('timeout'), timeoutMs);
      this.on('qr', onQr);
      this.on('ready', onReady);
      this.on('unavailable', onUnavailable);
      signal?.addEventListener('abort', () => done('timeout'), { once: true });
    });
  }

  private async connect(live: Live): Promise<void> {
    const { agentId, engine } = live;
    const logger = this.options.logger.child({ agentId, engine: engine.name });
    const session = engine.createSession(agentId, { logger });
    live.session = session;
    live.state = 'starting';
    this.attach(live, session, logger);
    this.emit('change', agentId);
    try {
      await session.start();
      logger.info({ event: 'session.starting' }, 'session starting');
    } catch (err) {
      if (live.session !== session) return;
      live.lastError = errorMessage(err);
      await this.persist(agentId, { lastError: live.lastError });
      await this.teardown(live);
      if (isDatabaseUnavailable(err)) {
        // The login store is in the database, which is away for now: that passes, so try again later.
        logger.warn({ event: 'session.start_failed', err: live.lastError }, 'session could not start');
        this.scheduleReconnect(live, logger);
        return;
      }
      // start() rejects only when no attempt can begin (no browser, an unreadable login store): a timer cannot fix
      // that. The session stays stopped, saying why, until the operator acts (a QR code, a reconnect).
      live.state = 'unavailable';
      logger.error({ event: 'session.engine_unavailable', err: live.lastError }, 'session cannot start');
      this.emit('unavailable', agentId);
      this.emit('change', agentId);
    }
  }

  private attach(live: Live, session: EngineSession, logger: Logger): void {
    const { agentId } = live;
    const current = () => live.session === session;
    session.on('qr', (text) => {
      if (!current()) return;
      void this.renderQr(text).then((png) => {
        // Rendering is asynchronous: the phone may have scanned meanwhile, and a late QR must not undo that.
        if (!current() || live.state === 'connected' || live.state === 'authenticated') return;
        const firstQr = live.state !== 'qr'; // WhatsApp refreshes the QR code often; persist only the transition
        live.state = 'qr';
        live.qr = { text, png, updatedAt: this.now() };
        logger.info({ event: 'session.qr' }, 'QR code ready');
        if (firstQr) void this.persist(agentId, { status: 'awaiting_qr' });
        this.emit('qr', agentId);
        this.emit('change', agentId);
      });
    });
    session.on('pairing_code', (code) => {
      if (!current()) return;
      live.pairingCode = code;
      this.emit('change', agentId);
    });
    session.on('authenticated', () => {
      if (!current()) return;
      live.state = 'authenticated';
      logger.info({ event: 'session.authenticated' }, 'session authenticated');
      this.emit('change', agentId);
    });
    session.on('ready', ({ me, lid }) => {
      if (!current()) return;
      Object.assign(live, { state: 'connected', qr: null, pairingCode: null, me, lid: lid ?? null, lastError: null });
      live.attempt = 0;
      this.count(live, true);
      logger.info({ event: 'session.ready', me }, 'session connected');
      void this.persist(agentId, { status: 'connected', lastConnectedAt: this.now(), waJid: me, lastError: null });
      this.emit('ready', agentId);
      this.emit('change', agentId);
    });
    session.on('disconnected', ({ reason, loggedOut }) => {
      if (!current()) return;
      this.count(live, false);
      live.state = loggedOut ? 'logged_out' : 'disconnected';
      live.lastError = loggedOut ? 'logged out from the phone' : `disconnected: ${reason}`;
      logger.warn({ event: loggedOut ? 'session.logged_out' : 'session.disconnected', reason }, 'session disconnected');
      void this.persist(agentId, { status: 'disconnected', lastDisconnectedAt: this.now(), lastError: live.lastError });
      // Logged out: the phone unlinked this device and the stored login is useless; a new QR code is needed.
      void this.enqueue(live, async () => {
        await this.teardown(live, loggedOut);
        if (!loggedOut) this.scheduleReconnect(live, logger);
      });
      this.emit('change', agentId);
    });
    session.on('auth_failure', (message) => {
      if (!current()) return;
      this.count(live, false);
      live.state = 'auth_failed';
      live.lastError = `auth failure: ${message}`;
      logger.error({ event: 'session.auth_failure', reason: message }, 'session auth failure');
      void this.persist(agentId, { status: 'auth_failed', lastError: live.lastError });
      void this.enqueue(live, () => this.teardown(live));
      this.emit('change', agentId);
    });
    session.on('message', (message) => {
      if (current() && live.state === 'connected') this.emit('message', agentId, message);
    });
    session.on('ack', (ack) => {
      if (current()) this.emit('ack', agentId, ack);
    });
    session.on('identities', (pairs) => {
      if (current()) this.emit('identities', agentId, pairs);
    });
  }

  private scheduleReconnect(live: Live, logger: Logger): void {
    if (this.lives.get(live.agentId) !== live) return;
    const { baseMs, maxMs, random } = this.backoff;
    const ceiling = Math.min(maxMs, baseMs * 2 ** live.attempt);
    const delay = Math.round(ceiling / 2 + (random() * ceiling) / 2);
    live.attempt += 1;
    live.state = 'reconnecting';
    logger.info({ event: 'session.reconnect_scheduled', delayMs: delay, attempt: live.attempt }, 'reconnecting');
    live.reconnectTimer = this.clock.setTimeout(
      () => {
        live.reconnectTimer = undefined;
        if (this.lives.get(live.agentId) === live && live.state === 'reconnecting') void this.connect(live);
      },
      delay,
      { background: true },
    );
    this.emit('change', live.agentId);
  }

  /**
   * Detaches and stops (or logs out) the engine session; errors are logged, never thrown. Teardowns of one live go one
   * after the other, so that each caller returns once the session is closed, not merely detached by another caller.
   */
  private teardown(live: Live, logout = false): Promise<void> {
    const step = () => this.teardownNow(live, logout);
    live.closing = live.closing.then(step, step);
    return live.closing;
  }

  private async teardownNow(live: Live, logout: boolean): Promise<void> {
    live.reconnectTimer?.cancel();
    live.reconnectTimer = undefined;
    this.count(live, false);
    const session = live.session;
    live.session = null;
    if (!session) {
      // Between two connections (reconnecting, or a start that failed) there is no session to log out: the stored
      // login goes all the same, so that nothing started later under this agent id is logged in to this account.
      if (logout) await live.engine.clearStoredLogin(live.agentId).catch(() => {});
      return;
    }
    session.removeAllListeners();
    try {
      await (logout ? session.logout() : session.stop());
    } catch (err) {
      this.options.logger.warn({ event: 'session.stop_failed', agentId: live.agentId, err }, 'stop failed');
      if (logout) await live.engine.clearStoredLogin(live.agentId).catch(() => {});
    }
  }

  private now(): Date {
    return new Date(this.clock.now());
  }

  private count(live: Live, connected: boolean): void {
    if (live.counted === connected) return;
    live.counted = connected;
    this.options.metrics.sessionsActive.inc(connected ? 1 : -1);
  }

  private persist(agentId: string, patch: Parameters<SessionsRepository['update']>[1]): Promise<void> {
    const write = async () => {
      try {
        await this.options.repo.update(agentId, patch);
      } catch (err) {
        this.options.logger.error({ event: 'session.persist_failed', agentId, err }, 'could not save session state');
      }
    };
    const live = this.lives.get(agentId);
    return live ? this.enqueue(live, write) : write();
  }

  /** Runs a step after the agent's earlier ones (status writes, teardowns), so they land in event order. */
  private enqueue(live: Live, step: () => Promise<void>): Promise<void> {
    live.pending = live.pending.then(step, step);
    return live.pending;
  }
}

export async function runWithConcurrency<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
