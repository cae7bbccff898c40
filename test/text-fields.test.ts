// Bad text never reaches the database: a NUL byte or an unpaired surrogate in any string field is a 400 naming it.
import { describe, expect, it } from 'vitest';
import { IMAGES } from '../src/messaging/__fixtures__/images.js';
import { useTestApp } from './helpers/app.js';
import { type ConnectedAgent, connectAgent, sent } from './helpers/messaging.js';

const BAD = { nul: 'a\u0000b', surrogate: 'a\ud800b', lowSurrogate: '\udc00' } as const;
const png = IMAGES.png.toString('base64');

describe('text fields: NUL bytes and unpaired surrogates', () => {
  const f = useTestApp();
  let agent: ConnectedAgent;

  const expectRefused = (res: { statusCode: number; json: () => unknown }, field: string, code = 'INVALID_PAYLOAD') => {
    expect(res.statusCode).toBe(400);
    const body = res.json() as { error: { code: string; message: string } };
    expect(body.error.code).toBe(code);
    expect(body.error.message.startsWith(`${field}:`)).toBe(true);
  };

  it.each(Object.entries(BAD))('POST /sessions refuses %s in userId, agentName and apikey', async (_kind, bad) => {
    const valid = { userId: 'u-text', agentId: 'text-create', agentName: 'Bot', apikey: 'key-text-create-012345' };
    for (const field of ['userId', 'agentName', 'apikey'] as const) {
      const res = await f.t.app.inject({
        method: 'POST',
        url: '/sessions',
        headers: f.t.admin,
        payload: { ...valid, [field]: bad },
      });
      expectRefused(res, `body.${field}`);
    }
    const rows = await f.db.database.query(`SELECT agent_id FROM whatsapp_user WHERE agent_id = 'text-create'`);
    expect(rows).toEqual([]);
  });

  it.each(Object.entries(BAD))('POST /agents/{agentId}/messages refuses %s in its fields', async (_kind, bad) => {
    agent ??= await connectAgent(f.t, 'text-bot');
    const before = sent(f.t, agent.agentId).length;
    const valid = { to: '6281234567890', message: 'hello' };
    for (const [field, payload] of [
      ['message', { ...valid, message: bad }],
      ['to', { ...valid, to: `62812345678${bad}` }],
      ['quotedMessageId', { ...valid, quotedMessageId: bad }],
      ['quoteId', { ...valid, quoteId: bad }],
      ['mentions.0', { ...valid, mentions: [bad] }],
    ] as const) {
      const res = await f.t.app.inject({
        method: 'POST',
        url: `/agents/${agent.agentId}/messages`,
        headers: agent.auth,
        payload,
      });
      expectRefused(res, `body.${field}`);
    }
    const keyed = await f.t.app.inject({
      method: 'POST',
      url: `/agents/${agent.agentId}/messages`,
      headers: { ...agent.auth, 'idempotency-key': bad },
      payload: valid,
    });
    expectRefused(keyed, 'headers.idempotency-key');
    expect(sent(f.t, agent.agentId)).toHaveLength(before);
  });

  it.each(Object.entries(BAD))(
    'POST /agents/{agentId}/media refuses %s in caption and filename',
    async (_kind, bad) => {
      agent ??= await connectAgent(f.t, 'text-bot');
      const before = sent(f.t, agent.agentId).length;
      const valid = { to: '6281234567890', data: png, save_to_temp: false };
      for (const field of ['caption', 'filename', 'quotedMessageId', 'mimeType'] as const) {
        const res = await f.t.app.inject({
          method: 'POST',
          url: `/agents/${agent.agentId}/media`,
          headers: agent.auth,
          payload: { ...valid, [field]: bad },
        });
        expectRefused(res, `body.${field}`);
      }
      expect(sent(f.t, agent.agentId)).toHaveLength(before);
    },
  );

  it('refuses a NUL byte in the path ids', async () => {
    agent ??= await connectAgent(f.t, 'text-bot');
    const message = await f.t.app.inject({
      method: 'GET',
      url: `/agents/${agent.agentId}/messages/abc%00def`,
      headers: agent.auth,
    });
    expectRefused(message, 'params.messageId');
    const session = await f.t.app.inject({ method: 'GET', url: '/sessions/abc%00def', headers: f.t.admin });
    expectRefused(session, 'params.agentId', 'INVALID_AGENT_ID');
  });

  it('answers a path that is not UTF-8 once decoded, or too long for the router, in the error envelope', async () => {
    for (const url of ['/sessions/%ED%A0%80', '/agents/%C0%AE/messages/x', `/sessions/${'x'.repeat(2_000)}`]) {
      const res = await f.t.app.inject({ method: 'GET', url, headers: f.t.admin });
      expectRefused(res, 'path');
      expect(res.json().error.traceId).toBe(res.headers['x-request-id']);
    }
    // Longer than an agentId may be, within the router's limit: the schema names it, as for any other bad agentId.
    const long = await f.t.app.inject({ method: 'GET', url: `/sessions/${'x'.repeat(200)}`, headers: f.t.admin });
    expectRefused(long, 'params.agentId', 'INVALID_AGENT_ID');
  });

  it.each(Object.entries(BAD))(
    'POST /agents/{agentId}/run refuses %s in its fields and inside free JSON',
    async (_kind, bad) => {
      agent ??= await connectAgent(f.t, 'text-bot');
      const valid = { input: 'hi', session_id: '6281234567890' };
      for (const [field, payload] of [
        ['input', { ...valid, input: bad }],
        ['message', { session_id: valid.session_id, message: bad }],
        ['session_id', { ...valid, session_id: bad }],
        ['sessionId', { input: 'hi', sessionId: bad }],
        ['parameters.tone', { ...valid, parameters: { tone: bad } }],
        ['metadata.tags.1', { ...valid, metadata: { tags: ['ok', bad] } }],
        ['openai_api_key', { ...valid, openai_api_key: bad }],
        ['context_memory', { ...valid, context_memory: { [bad]: 1 } }],
      ] as const) {
        const res = await f.t.app.inject({
          method: 'POST',
          url: `/agents/${agent.agentId}/run`,
          headers: agent.auth,
          payload,
        });
        expectRefused(res, `body.${field}`);
      }
    },
  );

  it('POST /agents/{agentId}/run refuses free JSON nested past the limit (the AI call could not serialize it)', async () => {
    agent ??= await connectAgent(f.t, 'text-bot');
    const deep = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
    for (const [field, json] of [
      ['metadata', `{"input":"hi","session_id":"6281234567890","metadata":${deep(50_000)}}`],
      ['parameters.x', `{"input":"hi","session_id":"6281234567890","parameters":{"x":${deep(100)}}}`],
      ['memory', `{"input":"hi","session_id":"6281234567890","memory":${deep(70)}}`],
    ] as const) {
      const res = await f.t.app.inject({
        method: 'POST',
        url: `/agents/${agent.agentId}/run`,
        headers: { ...agent.auth, 'content-type': 'application/json' },
        payload: json,
      });
      expect(res.statusCode).toBe(400);
      const { code, message } = res.json().error;
      expect(code).toBe('INVALID_PAYLOAD');
      expect(message).toMatch(new RegExp(`^body\\.${field}(\\.0)+: must not nest deeper than 64 levels$`));
    }
  });

  it.each(Object.entries(BAD))('the sandbox control routes and the pairing code refuse %s', async (_kind, bad) => {
    agent ??= await connectAgent(f.t, 'text-bot');
    const inbound = await f.t.app.inject({
      method: 'POST',
      url: `/sandbox/agents/${agent.agentId}/inbound`,
      headers: f.t.admin,
      payload: { from: '6281234567890', text: bad },
    });
    expectRefused(inbound, 'body.text');
    const scan = await f.t.app.inject({
      method: 'POST',
      url: `/sandbox/agents/${agent.agentId}/scan`,
      headers: f.t.admin,
      payload: { phone: bad },
    });
    expectRefused(scan, 'body.phone');
    const pairing = await f.t.app.inject({
      method: 'POST',
      url: `/sessions/${agent.agentId}/pairing-code`,
      headers: f.t.admin,
      payload: { phone: bad },
    });
    expectRefused(pairing, 'body.phone');
  });

  it('still takes text that is merely unusual: emoji (surrogate pairs), RTL, control characters other than NUL', async () => {
    agent ??= await connectAgent(f.t, 'text-bot');
    const res = await f.t.app.inject({
      method: 'POST',
      url: `/agents/${agent.agentId}/messages`,
      headers: agent.auth,
      payload: { to: '6281234567890', message: 'ok 👍🏽 مرحبا \u0001\t\u200d 𝄞' },
    });
    expect(res.statusCode).toBe(200);
    expect(sent(f.t, agent.agentId).at(-1)?.text).toBe('ok 👍🏽 مرحبا \u0001\t\u200d 𝄞');
  });
});
