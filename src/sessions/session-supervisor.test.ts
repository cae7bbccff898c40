import { EventEmitter } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import { FakeClock } from '../__fixtures__/fake-clock.js';
import type { Engine, EngineSession, EngineSessionEvents } from '../engines/engine.js';
import { createLogger } from '../observability/logger.js';
import { createMetrics } from '../observability/metrics.js';
import { SessionSupervisor } from './session-supervisor.js';
import type { SessionPatch, SessionsRepository } from './sessions.repository.js';

class FakeSession extends EventEmitter<EngineSessionEvents> implements EngineSession {
  /** start() itself rejects: no attempt can begin (no browser binary, say). */
  startError: Error | null = null;
  /** The attempt begins, then fails as WhatsApp being unreachable does: one `disconnected` event. */
  unreachable = false;
  readonly calls: string[] = [];
  constructor(readonly agentId: string) {
    super();
  }
  async start() {
    this.calls.push('start');
    if (this.startError) throw this.startError;
    if (this.unreachable) {
      setImmediate(() => this.emit('disconnected', { reason: 'net::ERR_NAME_NOT_RESOLVED', loggedOut: false }));
    }
  }
  /** What stop() waits for: a browser that takes its time to close. */
  stopping: Promise<void> = Promise.resolve();
  async stop() {
    this.calls.push('stop');
    await this.stopping;
  }
  async logout() {
    this.calls.push('logout');
  }
  async sendText() {
    return { id: 'x' };
  }
  async sendImage() {
    return { id: 'x' };
  }
}

/** Lets the callbacks of promises settled so far run (setImmediate comes after every queued promise callback). */
const afterPromiseCallbacks = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A QR renderer whose renderings finish only when the test says so. */
function manualRenderer() {
  const waiting: Array<{ text: string; finish: () => void }> = [];
  const render = (text: string) =>
    new Promise<Buffer>((resolve) => {
      waiting.push({ text, finish: () => resolve(Buffer.from(`png:${text}`)) });
    });
  return { render, waiting };
}

function setup(
  options: { unreachable?: number; cannotStart?: number; renderQr?: (text: string) => Promise<Buffer> } = {},
) {
  const sessions: FakeSession[] = [];
  let unreachable = options.unreachable ?? 0;
  let cannotStart = options.cannotStart ?? 0;
  const engine: Engine = {
    name: 'sandbox',
    createSession(agentId) {
      const session = new FakeSession(agentId);
      if (unreachable > 0) {
        unreachable -= 1;
        session.unreachable = true;
      } else if (cannotStart > 0) {
        cannotStart -= 1;
        session.startError = new Error('No Chromium or Chrome found: set CHROME_PATH');
      }
      sessions.push(session);
      return session;
    },
    hasStoredLogin: async () => false,
    clearStoredLogin: vi.fn(async () => {}),
  };
  const patches: SessionPatch[] = [];
  const repo: SessionsRepository = {
    find: async () => null,
    insert: async () => {
      throw new Error('unused');
    },
    update: async (_agentId, patch) => {
      patches.push(patch);
    },
    delete: async () => true,
    page: async () => ({ rows: [], total: 0 }),
    all: async () => [],
  };
  const random = vi.fn(() => 0.5);
  const clock = new FakeClock();
  const supervisor = new SessionSupervisor({
    engines: new Map([['sandbox', engine]]),
    repo,
    logger: createLogger({ level: 'silent' }),
    metrics: createMetrics({ perAgent: false, collectProcessMetrics: false }),
    backoff: { baseMs: 1_000, maxMs: 8_000, random },
    clock,
    ...(options.renderQr ? { renderQr: options.renderQr } : {}),
  });
  return { supervisor, engine, sessions, patches, random, clock };
}

describe('SessionSupervisor', () => {
  it('records an auth failure, stops the session and does not reconnect', async () => {
    const { supervisor, engine, sessions, patches } = setup();
    await supervisor.start('a1', engine);
    sessions[0]?.emit('auth_failure', 'restore failed');
    expect(supervisor.snapshot('a1').sessionState).toBe('auth_failed');
    await supervisor.settled('a1');
    expect(patches).toContainEqual({ status: 'auth_failed', lastError: 'auth failure: restore failed' });
    expect(sessions[0]?.calls).toEqual(['start', 'stop']);
    expect(sessions).toHaveLength(1);
    expect(supervisor.isRunning('a1')).toBe(false);
  });

  /** A session whose login failed and which takes its time to close: `closed()` lets its stop() end. */
  const failedSlowToClose = async () => {
    const fixture = setup();
    await fixture.supervisor.start('a1', fixture.engine);
    let closed = () => {};
    const first = fixture.sessions[0] as FakeSession;
    first.stopping = new Promise<void>((resolve) => {
      closed = resolve;
    });
    first.emit('auth_failure', 'restore failed');
    return { ...fixture, closed };
  };

  it('starts one session when two starts race while the failed one is still stopping', async () => {
    const { supervisor, engine, sessions, closed } = await failedSlowToClose();
    expect(supervisor.isRunning('a1')).toBe(false);
    // Two QR requests at once: one waits for the old session to close, the other goes ahead meanwhile.
    const starts = [supervisor.start('a1', engine), supervisor.start('a1', engine)];
    await afterPromiseCallbacks();
    // Neither starts a new session while the old one is still closing.
    expect(sessions).toHaveLength(1);
    closed();
    await Promise.all(starts);
    await supervisor.settled('a1');
    // The old one and one new one: no second session left running on the same login, unknown to the supervisor.
    expect(sessions).toHaveLength(2);
    expect(sessions[1]?.calls).toEqual(['start']);
    expect(supervisor.isRunning('a1')).toBe(true);
  });

  it('does not start a session that was stopped (a shutdown) while its start waited for the old one to close', async () => {
    const { supervisor, engine, sessions, closed } = await failedSlowToClose();
    const start = supervisor.start('a1', engine);
    await afterPromiseCallbacks();
    const stop = supervisor.stop('a1', { logout: false });
    closed();
    await Promise.all([start, stop]);
    await supervisor.settled('a1');
    expect(sessions).toHaveLength(1);
    expect(supervisor.isRunning('a1')).toBe(false);
  });

  it('reconnects with exponential backoff and jitter when WhatsApp cannot be reached, then connects', async () => {
    const { supervisor, engine, sessions, patches, random, clock } = setup({ unreachable: 3 });
    await supervisor.start('a1', engine);
    await afterPromiseCallbacks();
    await supervisor.settled('a1');
    expect(supervisor.snapshot('a1')).toMatchObject({
      sessionState: 'reconnecting',
      lastError: 'disconnected: net::ERR_NAME_NOT_RESOLVED',
    });
    expect(patches).toContainEqual(expect.objectContaining({ lastError: 'disconnected: net::ERR_NAME_NOT_RESOLVED' }));
    expect(clock.pending()).toEqual([750]);
    // random() = 0.5 puts each delay at 3/4 of the ceiling: 750, 1500, 3000 ms.
    await clock.advance(749);
    expect(sessions).toHaveLength(1);
    await clock.advance(1);
    expect(sessions).toHaveLength(2);
    await supervisor.settled('a1');
    await clock.advance(1_500);
    expect(sessions).toHaveLength(3);
    await supervisor.settled('a1');
    await clock.advance(3_000);
    expect(sessions).toHaveLength(4);
    expect(random).toHaveBeenCalledTimes(3);
    sessions[3]?.emit('ready', { me: '6281@c.us' });
    expect(supervisor.snapshot('a1')).toMatchObject({ sessionState: 'connected', isReady: true, lastError: null });
    // Every failed attempt released its session.
    for (const failed of sessions.slice(0, 3)) expect(failed.calls).toEqual(['start', 'stop']);
  });

  it('stops, saying why, without retrying, when no attempt can begin; a new start is the operator’s', async () => {
    const { supervisor, engine, sessions, patches, clock } = setup({ cannotStart: 2 });
    const waited = supervisor.waitForQrOrReady('a1', 30_000);
    await supervisor.start('a1', engine);
    expect(await waited).toBe('unavailable');
    expect(supervisor.snapshot('a1')).toMatchObject({
      sessionState: 'unavailable',
      lastError: 'No Chromium or Chrome found: set CHROME_PATH',
    });
    expect(supervisor.isRunning('a1')).toBe(false);
    expect(patches).toContainEqual({ lastError: 'No Chromium or Chrome found: set CHROME_PATH' });
    expect(clock.pending()).toEqual([]); // no reconnect timer
    await clock.advance(600_000);
    expect(sessions).toHaveLength(1);
    await supervisor.start('a1', engine); // the operator asks again (a QR code, a reconnect)
    expect(sessions).toHaveLength(2);
    await supervisor.start('a1', engine);
    expect(sessions).toHaveLength(3);
    expect(supervisor.snapshot('a1').sessionState).toBe('starting');
  });

  it('caps the backoff at maxMs', async () => {
    const { supervisor, engine, sessions, clock } = setup({ unreachable: 100 });
    await supervisor.start('a1', engine);
    await afterPromiseCallbacks();
    await supervisor.settled('a1');
    // Ceilings 1, 2, 4, 8, 8, 8 s → delays 0.75, 1.5, 3, 6, 6, 6 s with random() = 0.5.
    for (const delay of [750, 1_500, 3_000, 6_000]) {
      expect(clock.pending()).toEqual([delay]);
      await clock.advance(delay);
      await supervisor.settled('a1');
    }
    expect(sessions).toHaveLength(5);
    expect(clock.pending()).toEqual([6_000]);
    await clock.advance(5_999);
    expect(sessions).toHaveLength(5);
    await clock.advance(1);
    expect(sessions).toHaveLength(6);
    await supervisor.settled('a1');
    await clock.advance(6_000);
    expect(sessions).toHaveLength(7);
    await supervisor.settled('a1');
    await supervisor.stop('a1', { logout: false });
    expect(clock.pending()).toEqual([]);
    await clock.advance(60_000);
    expect(sessions).toHaveLength(7);
  });

  it('logs out when the phone unlinks the device, and stays stopped', async () => {
    const { supervisor, engine, sessions, patches } = setup();
    await supervisor.start('a1', engine);
    sessions[0]?.emit('ready', { me: '6281@c.us' });
    sessions[0]?.emit('disconnected', { reason: 'LOGOUT', loggedOut: true });
    expect(supervisor.snapshot('a1')).toMatchObject({ sessionState: 'logged_out', isReady: false });
    await supervisor.settled('a1');
    expect(sessions[0]?.calls).toEqual(['start', 'logout']);
    expect(patches.at(-1)).toMatchObject({ status: 'disconnected', lastError: 'logged out from the phone' });
    expect(sessions).toHaveLength(1);
  });

  it('shows a QR code once it is rendered, stamped with the clock, and wakes a waiting caller', async () => {
    const renderer = manualRenderer();
    const { supervisor, engine, sessions, patches, clock } = setup({ renderQr: renderer.render });
    await supervisor.start('a1', engine);
    const waited = supervisor.waitForQrOrReady('a1', 30_000);
    sessions[0]?.emit('qr', 'qr-text');
    await clock.advance(5_000);
    expect(supervisor.snapshot('a1').sessionState).toBe('starting'); // not before the PNG exists
    renderer.waiting[0]?.finish();
    expect(await waited).toBe('qr');
    expect(supervisor.qr('a1')).toEqual({
      text: 'qr-text',
      png: Buffer.from('png:qr-text'),
      updatedAt: new Date(clock.now()),
    });
    await supervisor.settled('a1');
    expect(patches).toEqual([{ status: 'awaiting_qr' }]);
    expect(clock.pending()).toEqual([]); // the wait's timeout went with it
  });

  it('answers a QR code already showing at once, leaving no listener or timer behind', async () => {
    const { supervisor, engine, sessions, clock } = setup();
    const first = supervisor.startForQr('a1', 30_000, () => engine);
    await afterPromiseCallbacks();
    sessions[0]?.emit('qr', 'qr-text');
    expect(await first).toBe('qr');
    await supervisor.settled('a1');
    const listeners = () => ['qr', 'ready', 'unavailable'].map((event) => supervisor.listenerCount(event));
    const before = listeners();
    for (let i = 0; i < 3; i++) expect(await supervisor.startForQr('a1', 30_000, () => engine)).toBe('qr');
    expect(listeners()).toEqual(before);
    expect(clock.pending()).toEqual([]);
    expect(sessions).toHaveLength(1);
  });

  it('gives up waiting for a QR code when the clock passes the timeout', async () => {
    const renderer = manualRenderer();
    const { supervisor, engine, clock } = setup({ renderQr: renderer.render });
    await supervisor.start('a1', engine);
    const waited = supervisor.waitForQrOrReady('a1', 30_000);
    await clock.advance(29_999);
    expect(clock.pending()).toEqual([1]);
    await clock.advance(1);
    expect(await waited).toBe('timeout');
  });

  it('keeps a session connected when the phone scans while the QR code is still being rendered', async () => {
    const renderer = manualRenderer();
    const { supervisor, engine, sessions, patches } = setup({ renderQr: renderer.render });
    await supervisor.start('a1', engine);
    sessions[0]?.emit('qr', 'qr-text');
    sessions[0]?.emit('ready', { me: '6281@c.us' });
    expect(renderer.waiting.map((r) => r.text)).toEqual(['qr-text']);
    renderer.waiting[0]?.finish(); // the PNG is ready only after the scan
    await afterPromiseCallbacks();
    await supervisor.settled('a1');
    expect(supervisor.snapshot('a1')).toMatchObject({ sessionState: 'connected', isReady: true, qr: null });
    expect(patches).not.toContainEqual({ status: 'awaiting_qr' });
  });

  it('ignores events from a session it has replaced', async () => {
    const { supervisor, engine, sessions } = setup();
    await supervisor.start('a1', engine);
    await supervisor.stop('a1', { logout: false });
    await supervisor.start('a1', engine);
    sessions[0]?.emit('ready', { me: 'old@c.us' });
    expect(supervisor.snapshot('a1').isReady).toBe(false);
    sessions[1]?.emit('ready', { me: 'new@c.us' });
    expect(supervisor.snapshot('a1').me).toBe('new@c.us');
  });
});
