// Database errors are logged without their parameters: a failed insert must not write the API key into the logs.
import { describe, expect, it } from 'vitest';
import { useTestApp } from './helpers/app.js';

const SECRET = 'sk-live-never-in-logs-0123456789';

describe('logs of a failed database statement', () => {
  const f = useTestApp();

  it('keep the error and its statement, but not the values it carried', async () => {
    // A constraint the service does not know of makes the whatsapp_user insert fail on the server.
    await f.db.database.query(
      `ALTER TABLE whatsapp_user ADD CONSTRAINT test_refused_name CHECK (agent_name <> 'refused-name')`,
    );
    const res = await f.t.app.inject({
      method: 'POST',
      url: '/sessions',
      headers: f.t.admin,
      payload: { userId: 'u-secret', agentId: 'secret-bot', agentName: 'refused-name', apikey: SECRET },
    });
    expect(res.statusCode).toBe(500);
    expect(res.body).not.toContain(SECRET);

    const failure = f.t.logs.find((line) => line.event === 'http.error');
    const err = failure?.err as { type: string; message: string; stack: string; code?: string } | undefined;
    expect(err?.message).toContain('Failed query: insert into "whatsapp_user"');
    expect(err?.message).toContain('test_refused_name');
    expect(err?.stack).toContain('    at ');
    for (const line of f.t.logs) expect(JSON.stringify(line)).not.toContain(SECRET);
  });
});
