import { initAuthCreds, proto } from 'baileys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/database.js';
import { BaileysAuthStore, deleteStoredAuth, hasStoredCreds } from './auth-state.js';

let test: TestDatabase;
beforeAll(async () => {
  test = await createTestDatabase();
});
afterAll(() => test.drop());

const linkedCreds = () => ({
  ...initAuthCreds(),
  me: { id: '6281200000000:3@s.whatsapp.net', name: 'Bot' },
  account: { details: new Uint8Array([1, 2, 3]) },
});

describe('BaileysAuthStore', () => {
  it('starts with fresh creds and stores nothing until the device is linked', async () => {
    const sut = new BaileysAuthStore(test.database, 'auth-fresh');
    const { creds } = await sut.load();
    expect(creds.registrationId).toBeGreaterThan(0);
    await sut.saveCreds(creds);
    expect(await hasStoredCreds(test.database, 'auth-fresh')).toBe(false);
    Object.assign(creds, { me: { id: '6281200000000:3@s.whatsapp.net' }, account: { details: new Uint8Array([9]) } });
    await sut.saveCreds(creds);
    expect(await hasStoredCreds(test.database, 'auth-fresh')).toBe(true);
  });

  it('gives back the same creds, keys included, after a restart', async () => {
    const first = new BaileysAuthStore(test.database, 'auth-resume');
    const creds = { ...(await first.load()).creds, ...linkedCreds() };
    await first.saveCreds(creds);
    const { creds: resumed } = await new BaileysAuthStore(test.database, 'auth-resume').load();
    expect(resumed.me).toEqual(creds.me);
    expect(Buffer.from(resumed.noiseKey.private)).toEqual(Buffer.from(creds.noiseKey.private));
    expect(resumed.registrationId).toBe(creds.registrationId);
  });

  it('stores, reads and deletes signal keys by type and id; app state keys come back as protobuf objects', async () => {
    const { keys } = await new BaileysAuthStore(test.database, 'auth-keys').load();
    await keys.set({
      'pre-key': { '1': { public: new Uint8Array([1, 1]), private: new Uint8Array([2, 2]) }, '2': null },
      session: { '6289900000001.0': new Uint8Array([7, 7, 7]) },
      'app-state-sync-key': { AAAA: { keyData: new Uint8Array([5]), timestamp: 1 } },
    });
    const preKeys = await keys.get('pre-key', ['1', '2']);
    expect(Object.keys(preKeys)).toEqual(['1']);
    expect(Buffer.from(preKeys['1']?.private ?? [])).toEqual(Buffer.from([2, 2]));
    const sessions = await keys.get('session', ['6289900000001.0']);
    expect(Buffer.from(sessions['6289900000001.0'] ?? [])).toEqual(Buffer.from([7, 7, 7]));
    const appState = await keys.get('app-state-sync-key', ['AAAA']);
    expect(appState.AAAA).toBeInstanceOf(proto.Message.AppStateSyncKeyData);
    await keys.set({ session: { '6289900000001.0': null } });
    expect(await keys.get('session', ['6289900000001.0'])).toEqual({});
  });

  it('keeps each agent to its own rows', async () => {
    const a = await new BaileysAuthStore(test.database, 'auth-a').load();
    const b = await new BaileysAuthStore(test.database, 'auth-b').load();
    await a.keys.set({ session: { x: new Uint8Array([1]) } });
    expect(await b.keys.get('session', ['x'])).toEqual({});
    await deleteStoredAuth(test.database, 'auth-a');
    expect(await a.keys.get('session', ['x'])).toEqual({});
  });

  it('once cleared, a late write from a closing socket cannot bring the login back', async () => {
    const sut = new BaileysAuthStore(test.database, 'auth-clear');
    const { creds, keys } = await sut.load();
    Object.assign(creds, linkedCreds());
    await sut.saveCreds(creds);
    await sut.clear();
    await sut.saveCreds(creds);
    await keys.set({ session: { late: new Uint8Array([1]) } });
    expect(await hasStoredCreds(test.database, 'auth-clear')).toBe(false);
    const rows = await test.database.query("SELECT key FROM baileys_auth WHERE agent_id = 'auth-clear'");
    expect(rows).toEqual([]);
  });
});
