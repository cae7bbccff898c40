// Agent endpoints: the agent's key, the admin key, and the lazy sync from the shared api_keys table.
import { describe, expect, it, vi } from 'vitest';
import { useTestApp } from './helpers/app.js';
import { insertApiKey } from './helpers/database.js';
import { connectAgent } from './helpers/messaging.js';

describe('agent authentication', () => {
  const f = useTestApp();
  const send = (agentId: string, authorization?: string) =>
    f.t.app.inject({
      method: 'POST',
      url: `/agents/${agentId}/messages`,
      headers: authorization ? { authorization } : {},
      payload: { to: '6281234567890', message: 'hi' },
    });

  it('takes the agent key and the admin key; refuses a missing, wrong or foreign key and an unknown agent', async () => {
    const a = await connectAgent(f.t, 'auth-a');
    const b = await connectAgent(f.t, 'auth-b');
    expect((await send('auth-a', a.auth.authorization)).statusCode).toBe(200);
    expect((await send('auth-a', f.t.admin.authorization)).statusCode).toBe(200);
    expect((await send('auth-a')).statusCode).toBe(401);
    const wrong = await send('auth-a', 'Bearer not-the-key');
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().error.code).toBe('UNAUTHORIZED');
    const foreign = await send('auth-a', b.auth.authorization);
    expect(foreign.statusCode).toBe(403);
    expect(foreign.json().error.code).toBe('FORBIDDEN');
    const unknown = await send('ghost', a.auth.authorization);
    expect(unknown.statusCode).toBe(401);
    expect(unknown.json().error.code).toBe('UNAUTHORIZED');
  });

  it('adopts a key rotated in api_keys on its first request, and saves it on the row', async () => {
    await connectAgent(f.t, 'rotating', { userId: 'user-rotating' });
    await insertApiKey(f.db.database, 'user-rotating', 'rotated-key-0123456789');
    const res = await send('rotating', 'Bearer rotated-key-0123456789');
    expect(res.statusCode).toBe(200);
    const rows = await f.db.database.query(`SELECT api_key FROM whatsapp_user WHERE agent_id = 'rotating'`);
    expect(rows[0]?.api_key).toBe('rotated-key-0123456789');
    // The old key no longer opens the agent.
    expect((await send('rotating', 'Bearer key-rotating-0123456789')).statusCode).toBe(401);
  });

  it('does not query the database for each wrong key', async () => {
    await connectAgent(f.t, 'hammered');
    const query = vi.spyOn(f.t.container.database, 'query');
    const select = vi.spyOn(f.t.container.database.db, 'select');
    for (let i = 0; i < 30; i++) expect((await send('hammered', `Bearer wrong-${i}`)).statusCode).toBe(401);
    // One api_keys look-up at most in the throttle window, whatever the number of wrong keys.
    expect(select.mock.calls.length + query.mock.calls.length).toBeLessThanOrEqual(1);
    query.mockRestore();
    select.mockRestore();
  });

  it('never writes a key into the logs', async () => {
    await send('auth-a', 'Bearer some-wrong-secret-key');
    const logs = JSON.stringify(f.t.logs);
    expect(logs).not.toContain('some-wrong-secret-key');
    expect(logs).not.toContain('key-auth-a-0123456789');
  });
});
