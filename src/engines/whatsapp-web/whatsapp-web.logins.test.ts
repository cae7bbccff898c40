import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/database.js';
import { FakeClock } from '../../__fixtures__/fake-clock.js';
import { isDatabaseUnavailable } from '../../db/availability.js';
import type { Database } from '../../db/client.js';
import { nextEvent } from '../engine.contract.js';
import type { Engine, EngineSession } from '../engine.js';
import { FakeWweb } from './__fixtures__/whatsapp-web.fake.js';
import { ProfileSync } from './profile-sync.js';
import { createWhatsappWebEngine } from './whatsapp-web.engine.js';
import { WwebLoginsRepository } from './wweb-logins.repository.js';

const logger = pino({ level: 'silent' });
// Any executable stands in for Chromium: the fake client never launches it.
const chromePath = process.execPath;
const PHONE = '6281200000000';

let test: TestDatabase;
let fake: FakeWweb;
const dirs: string[] = [];
beforeAll(async () => {
  test = await createTestDatabase();
});
afterAll(() => test.drop());
beforeEach(async () => {
  fake = new FakeWweb();
  await test.database.query('DELETE FROM wwebjs_logins');
});
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'wamt-wweb-db-'));
  dirs.push(dir);
  return dir;
}

/** One process of a cluster: its own WWEBJS_AUTH_DIR, the shared database. */
async function member(database: Database = test.database) {
  const authDir = await tempDir();
  return {
    authDir,
    engine: createWhatsappWebEngine({ authDir, chromePath, logger, createClient: fake.createClient, database }),
  };
}

async function put(profileDir: string, name: string, content: string): Promise<void> {
  await mkdir(path.dirname(path.join(profileDir, name)), { recursive: true });
  await writeFile(path.join(profileDir, name), content);
}

async function linked(engine: Engine, agentId: string): Promise<EngineSession> {
  const session = engine.createSession(agentId, { logger });
  const qr = nextEvent(session, 'qr');
  await session.start();
  await qr;
  const ready = nextEvent(session, 'ready');
  await fake.latest(agentId).scan(PHONE);
  await ready;
  return session;
}

/** Starts the agent and waits for `ready`, which must come without a QR code. */
async function resumed(engine: Engine, agentId: string): Promise<EngineSession> {
  const session = engine.createSession(agentId, { logger });
  let qrShown = false;
  session.on('qr', () => {
    qrShown = true;
  });
  const ready = nextEvent(session, 'ready');
  await session.start();
  expect((await ready)[0].me).toBe(`${PHONE}@c.us`);
  expect(qrShown).toBe(false);
  return session;
}

describe('whatsapp-web logins in the database', () => {
  it('resumes a LocalAuth folder from before logins moved to the database, and stores it for the others', async () => {
    const one = await member();
    await put(path.join(one.authDir, 'session-old-1'), 'Default/Local Storage/fake-login.json', `{"phone":"${PHONE}"}`);
    expect(await one.engine.hasStoredLogin('old-1')).toBe(true);
    await (await resumed(one.engine, 'old-1')).stop();
    const two = await member();
    expect(await two.engine.hasStoredLogin('old-1')).toBe(true);
    await (await resumed(two.engine, 'old-1')).stop();
  });

  it('a login ended on another process does not come back from the copy left in this one', async () => {
    const one = await member();
    const two = await member();
    await (await linked(one.engine, 'gone-1')).stop();
    await (await resumed(two.engine, 'gone-1')).logout();
    await stat(path.join(one.authDir, 'session-gone-1')); // the copy is still there
    expect(await one.engine.hasStoredLogin('gone-1')).toBe(false);
    const again = one.engine.createSession('gone-1', { logger });
    const qr = nextEvent(again, 'qr');
    await again.start();
    await qr;
    await again.stop();
  });

  it('a process whose copy is older than the stored one cannot overwrite it', async () => {
    const [one, two, three] = [await member(), await member(), await member()];
    const stale = await linked(one.engine, 'fenced-1');
    // One lost its lease without noticing and still runs, while two resumes the login and saves a newer copy.
    const moved = await resumed(two.engine, 'fenced-1');
    await put(path.join(two.authDir, 'session-fenced-1'), 'Default/IndexedDB/000007.ldb', 'newer');
    await moved.stop();
    await put(path.join(one.authDir, 'session-fenced-1'), 'Default/IndexedDB/000007.ldb', 'stale');
    await stale.stop();
    await (await resumed(three.engine, 'fenced-1')).stop();
    const copy = path.join(three.authDir, 'session-fenced-1', 'Default/IndexedDB/000007.ldb');
    expect(await readFile(copy, 'utf8')).toBe('newer');
  });

  it('start() rejects with an error the supervisor retries when the database cannot be read', async () => {
    const lost = new Error('Connection terminated unexpectedly');
    const { engine } = await member({ ...test.database, query: () => Promise.reject(lost) });
    const error = await engine
      .createSession('db-down-1', { logger })
      .start()
      .catch((err: unknown) => err);
    expect(isDatabaseUnavailable(error)).toBe(true);
    expect(fake.clients.size).toBe(0);
  });

  it('saves a running session on the clock when its files changed, and never after clear()', async () => {
    const clock = new FakeClock();
    const profileDir = path.join(await tempDir(), 'session-tick-1');
    const logins = new WwebLoginsRepository(test.database);
    const sut = new ProfileSync({ agentId: 'tick-1', profileDir, logins, clock, logger, saveIntervalMs: 60_000 });
    await sut.restore();
    await put(profileDir, 'Default/Local Storage/leveldb/000003.log', 'one');
    sut.keepSaving();
    await clock.advance(60_000);
    await sut.idle();
    const first = await logins.load('tick-1', null);
    expect(first?.data).toBeInstanceOf(Buffer);
    await clock.advance(60_000);
    await sut.idle();
    expect((await logins.load('tick-1', null))?.generation).toBe(first?.generation); // unchanged: not written again
    await put(profileDir, 'Default/Local Storage/leveldb/000003.log', 'two');
    await clock.advance(60_000);
    await sut.idle();
    expect((await logins.load('tick-1', null))?.generation).not.toBe(first?.generation);
    await sut.clear();
    expect(clock.pending()).toEqual([]);
    await put(profileDir, 'Default/Local Storage/leveldb/000003.log', 'three');
    await sut.save();
    expect(await logins.exists('tick-1')).toBe(false);
  });
});
