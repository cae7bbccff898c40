import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/database.js';
import { until } from '../../test/helpers/messaging.js';
import { createLogger } from '../observability/logger.js';
import { SessionBoard } from './session-board.js';
import type { LiveState } from './session-supervisor.js';

const READY: LiveState = {
  isReady: true,
  hasClient: true,
  sessionState: 'connected',
  qr: null,
  qrUpdatedAt: null,
  pairingCode: null,
  me: '6281100000001@c.us',
  lastError: null,
};

/** The supervisor as the board sees it: which sessions run here, and their state. */
class FakeSupervisor extends EventEmitter<{ change: [agentId: string] }> {
  readonly lives = new Map<string, LiveState>();

  knows(agentId: string): boolean {
    return this.lives.has(agentId);
  }

  snapshot(agentId: string): LiveState {
    const live = this.lives.get(agentId);
    if (!live) throw new Error(`no session ${agentId}`);
    return live;
  }

  set(agentId: string, state: LiveState | null): void {
    if (state) this.lives.set(agentId, state);
    else this.lives.delete(agentId);
    this.emit('change', agentId);
  }
}

describe('SessionBoard, two members on one database', () => {
  let test: TestDatabase;
  const boards: SessionBoard[] = [];

  beforeEach(async () => {
    test = await createTestDatabase();
  });
  afterEach(async () => {
    await Promise.all(boards.splice(0).map((board) => board.close()));
    await test.drop();
  });

  async function member(instanceId: string) {
    const supervisor = new FakeSupervisor();
    const board = new SessionBoard({
      supervisor,
      database: test.database,
      logger: createLogger({ level: 'silent' }),
      instanceId,
      shared: true,
    });
    boards.push(board);
    await board.start();
    return { supervisor, board };
  }

  it("shows another member's session as its owner publishes it, and nobody's once it stops", async () => {
    const a = await member('a');
    const b = await member('b');
    a.supervisor.set('bot', READY);
    await until(() => b.board.entry('bot').liveState.isReady);
    expect(b.board.entry('bot')).toEqual({ liveState: READY, owner: 'a' });
    expect(b.board.account('bot')).toBe('6281100000001@c.us');

    a.supervisor.set('bot', null); // stopped, not handed over (a logout, an engine that gave up)
    await until(() => b.board.entry('bot').owner === null);
    expect(b.board.isReady('bot')).toBe(false);
    expect((await b.board.refresh('bot')).liveState.isReady).toBe(false);
  });

  it('shows a session that is handed over as moving everywhere, accepting sends, until the next owner publishes', async () => {
    const a = await member('a');
    const b = await member('b');
    const c = await member('c');
    a.supervisor.set('moving', READY);
    await until(() => b.board.isReady('moving') && c.board.isReady('moving'));

    a.board.handOver('moving');
    a.supervisor.set('moving', null);
    await a.board.published();
    await until(() => b.board.entry('moving').owner === null);
    // Every member shows it moving, and still accepts sends for it: they go out once it runs again.
    const moving = { ...READY, isReady: false, hasClient: false, sessionState: 'moving' };
    for (const { board } of [a, b]) {
      expect(board.entry('moving')).toEqual({ liveState: moving, owner: null });
      expect(board.isReady('moving')).toBe(true);
      expect(board.account('moving')).toBe('6281100000001@c.us');
    }
    // A member that reads the table (a send it has not heard of) finds the same.
    expect(await b.board.refresh('moving')).toEqual({ liveState: moving, owner: null });

    c.supervisor.set('moving', { ...READY, me: '6281100000002@c.us' });
    await until(() => a.board.entry('moving').owner === 'c' && b.board.entry('moving').owner === 'c');
    expect(b.board.account('moving')).toBe('6281100000002@c.us');
  });

  it('forgets a deleted session on every member', async () => {
    const a = await member('a');
    const b = await member('b');
    a.supervisor.set('gone', READY);
    await until(() => b.board.isReady('gone'));
    const removed: string[] = [];
    b.board.on('removed', (agentId) => removed.push(agentId));
    a.supervisor.set('gone', null);
    await a.board.removed('gone');
    await until(() => removed.length === 1);
    expect(b.board.entry('gone')).toEqual({ liveState: expect.objectContaining({ isReady: false }), owner: null });
    expect(await test.database.query(`SELECT 1 FROM session_live WHERE agent_id = 'gone'`)).toEqual([]);
  });
});
