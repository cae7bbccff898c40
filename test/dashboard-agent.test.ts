// The dashboard's agent page in headless Chromium: messages both ways with their receipt ticks, a webhook's failed
// delivery retried from the page, and the last hour's chart, on a real server with the sandbox engine, a stand-in AI
// backend and a webhook receiver on 127.0.0.1.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AiServer, startAiServer } from './helpers/ai-server.js';
import { ADMIN_KEY, createTestApp, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { until } from './helpers/messaging.js';
import { startWebhookReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
const ARTIFACTS = path.resolve('test-artifacts');
const AGENT = 'support-bot';
const USER = '6281234567890';
const USER_JID = `${USER}@c.us`;

if (!hasChromium) console.warn(`[dashboard-agent] browser tests SKIPPED: ${CHROMIUM} is missing`);

describe('/dashboard/vendor: uPlot from node_modules', () => {
  let db: TestDatabase;
  let t: TestApp;
  beforeAll(async () => {
    db = await createTestDatabase();
    t = await createTestApp({ database: db.database });
  }, 180_000);
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  it('serves the installed package files with their types, the page CSP and an ETag, and nothing else', async () => {
    for (const [file, type, marker] of [
      ['uPlot.esm.js', /^text\/javascript/, 'export { uPlot as default }'],
      ['uPlot.min.css', /^text\/css/, '.uplot'],
    ] as const) {
      const res = await t.app.inject({ method: 'GET', url: `/dashboard/vendor/${file}` });
      expect(res.statusCode, file).toBe(200);
      expect(res.headers['content-type'], file).toMatch(type);
      expect(res.body, file).toContain(marker);
      expect(String(res.headers['content-security-policy'])).toContain("script-src 'self'");
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      const etag = String(res.headers.etag);
      const again = await t.app.inject({
        method: 'GET',
        url: `/dashboard/vendor/${file}`,
        headers: { 'if-none-match': etag },
      });
      expect(again.statusCode, file).toBe(304);
    }
    for (const url of [
      '/dashboard/vendor/uPlot.iife.js',
      '/dashboard/vendor/..%2Fpackage.json',
      '/dashboard/vendor/../../package.json',
      '/dashboard/vendor/',
    ]) {
      expect((await t.app.inject({ method: 'GET', url })).statusCode, url).toBe(404);
    }
    const page = await t.app.inject({ method: 'GET', url: '/dashboard/' });
    expect(page.body).toContain('<link rel="stylesheet" href="/dashboard/vendor/uPlot.min.css" />');
    const chart = await t.app.inject({ method: 'GET', url: '/dashboard/activity-chart.js' });
    expect(chart.body).toContain("import uPlot from './vendor/uPlot.esm.js';");
    for (const name of ['agent-view.js', 'activity-chart.js']) {
      const body = (await t.app.inject({ method: 'GET', url: `/dashboard/${name}` })).body;
      expect(body, name).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
    }
  });
});

describe.skipIf(!hasChromium)('the agent page in a real browser', () => {
  let db: TestDatabase;
  let ai: AiServer;
  let receiver: WebhookReceiver;
  let t: TestApp;
  let base: string;
  let browser: Browser;
  const agentAuth = { authorization: 'Bearer support-bot-key-0123456789' };

  const api = async (method: string, url: string, body?: unknown, headers: Record<string, string> = t.admin) => {
    const response = await fetch(`${base}${url}`, {
      method,
      headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? null : JSON.stringify(body),
    });
    const json = (await response.json().catch(() => ({}))) as { data?: Record<string, unknown> };
    if (!response.ok) throw new Error(`${method} ${url}: ${response.status} ${JSON.stringify(json)}`);
    return json.data ?? {};
  };
  const inbound = (text: string) =>
    api('POST', `/sandbox/agents/${AGENT}/inbound`, { from: USER, text, pushName: 'Ana', chatName: 'Ana Pratama' });
  const send = async (message: string) =>
    (await api('POST', `/agents/${AGENT}/messages`, { to: USER, message }, agentAuth)) as {
      messageId: string;
      waMessageId: string;
      status: string;
    };
  const ack = (waMessageId: string, status: string) =>
    api('POST', `/sandbox/agents/${AGENT}/ack`, { waMessageId, status });
  const history = async () =>
    (
      (await api('GET', `/agents/${AGENT}/chats/${USER_JID}/messages?limit=50`)) as {
        items: Array<{ id: string; status: string | null; receipts: { read: string | null } | null }>;
      }
    ).items;

  beforeAll(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    db = await createTestDatabase();
    ai = await startAiServer((request) => ({
      kind: 'json',
      body: { reply: `Thanks! You asked: "${(request.body as { input?: string }).input ?? ''}"` },
      delayMs: 40,
    }));
    receiver = await startWebhookReceiver(500);
    t = await createTestApp({
      database: db.database,
      env: { AI_BACKEND_URL: ai.url, WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' },
    });
    base = await t.app.listen({ port: 0, host: '127.0.0.1' });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    });
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    await t?.close();
    await receiver?.close();
    await ai?.close();
    await db?.drop();
  });

  /** A fresh page that records script errors, console errors and CSP violations; all must stay empty. */
  async function openPage(viewport: { width: number; height: number }, url = `${base}/dashboard/`) {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    page.on('response', (response) => {
      if (response.status() >= 400) errors.push(`HTTP ${response.status()} ${response.url()}`);
    });
    await page.addInitScript(`document.addEventListener('securitypolicyviolation', (e) =>
      (window.cspViolations ??= []).push(e.violatedDirective + ' ' + e.blockedURI));`);
    await page.goto(url);
    return { page, errors, close: () => context.close() };
  }
  async function signIn(page: Page) {
    await page.getByLabel('Admin key').fill(ADMIN_KEY);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }
  const tickOf = (page: Page, text: string) =>
    page.locator('#message-list li', { hasText: text }).locator('.tick').first();

  it('shows the messages with their ticks, retries a failed webhook delivery, and charts the last hour', async () => {
    // An agent with a conversation: two questions the AI answers, four sends through the API with their receipts,
    // one of them refused by WhatsApp.
    await api('POST', '/sessions', {
      userId: 'u-support',
      agentId: AGENT,
      agentName: 'Support Bot',
      apikey: agentAuth.authorization.slice('Bearer '.length),
      engine: 'sandbox',
    });
    await api('POST', `/sandbox/agents/${AGENT}/scan`, { phone: '6280000000001' });
    await inbound('Hi, is my order on its way?');
    await inbound('It is order 1042');
    await until(async () => (await history()).filter((m) => m.status === 'sent').length === 2);
    const onServer = await send('On the server only');
    const delivered = await send('Delivered, not read yet');
    const read = await send('Your order 1042 left the warehouse today.');
    await ack(onServer.waMessageId, 'server');
    await ack(delivered.waMessageId, 'delivered');
    await ack(read.waMessageId, 'read');
    await api('POST', `/sandbox/agents/${AGENT}/fail-sends`, { count: 1, reason: 'not_on_whatsapp' });
    await api('POST', `/agents/${AGENT}/messages`, { to: USER, message: 'This one bounces' }, agentAuth);
    await until(async () => {
      const items = await history();
      return items.some((m) => m.status === 'failed') && items.some((m) => m.receipts?.read);
    });

    // A webhook whose receiver answers 500: its ping has failed three times (the next try is ~30 s away).
    const webhook = (await api(
      'POST',
      `/agents/${AGENT}/webhooks`,
      { url: receiver.url, events: ['session.status'], description: 'CRM sync' },
      agentAuth,
    )) as { id: string };
    await api('POST', `/agents/${AGENT}/webhooks/${webhook.id}/test`, {}, agentAuth);
    await until(() => receiver.received.length >= 3, 20_000);
    const attemptsBefore = receiver.received.length;

    const { page, errors, close } = await openPage({ width: 1280, height: 900 });
    try {
      await signIn(page);
      // From the sessions table to the agent page, which has its own address.
      await page.locator(`#sessions-body tr[data-agent="${AGENT}"]`).waitFor();
      await page.getByRole('link', { name: `Agent page of ${AGENT}: chats, webhooks and activity` }).click();
      await page.waitForURL(`**/dashboard/#/agents/${AGENT}`);
      await page.getByRole('heading', { name: `Agent ${AGENT}` }).waitFor();
      expect(await page.evaluate('document.activeElement?.id')).toBe('agent-title');
      expect(await page.locator('#overview').isHidden()).toBe(true);
      await page.locator('#agent-status').getByText('connected', { exact: true }).waitFor();

      // The chat, selected, and its messages both ways, newest first, with the right ticks.
      await page.locator('#chat-list button[aria-current="true"]').getByText('Ana Pratama').waitFor();
      await page.getByRole('heading', { name: 'Conversation with Ana Pratama' }).waitFor();
      await page.locator('#message-list li', { hasText: 'This one bounces' }).waitFor();
      const bodies = await page.locator('#message-list .msg-body').allTextContents();
      expect(bodies[0]).toBe('This one bounces');
      expect(bodies.at(-1)).toBe('Hi, is my order on its way?');
      expect(bodies).toHaveLength(8);
      expect(await page.locator('#message-list li.in').count()).toBe(2);
      expect(await page.locator('#message-list li.out').count()).toBe(6);
      expect(await tickOf(page, 'Your order 1042 left').getAttribute('data-tick')).toBe('read');
      expect(await tickOf(page, 'Your order 1042 left').getAttribute('aria-label')).toBe('Read');
      expect(await tickOf(page, 'Delivered, not read yet').getAttribute('data-tick')).toBe('delivered');
      expect(await tickOf(page, 'On the server only').getAttribute('data-tick')).toBe('sent');
      expect(await tickOf(page, 'You asked: "It is order 1042"').getAttribute('data-tick')).toBe('sent');
      const bounced = tickOf(page, 'This one bounces');
      expect(await bounced.getAttribute('data-tick')).toBe('failed');
      expect(await bounced.textContent()).toBe('✗');
      expect(await bounced.getAttribute('title')).toMatch(/\S/);
      expect(await page.locator('#message-list li.in .tick').count()).toBe(0);
      // Blue for read, grey for delivered.
      const color = (tick: string) =>
        page.evaluate(`getComputedStyle(document.querySelector('#message-list .tick[data-tick="${tick}"]')).color`);
      expect(await color('read')).toBe('rgb(11, 111, 214)');
      expect(await color('delivered')).not.toBe(await color('read'));
      // A queued message shows a clock (no send stays queued long enough here to see one).
      expect(
        await page.evaluate(`import('/dashboard/agent-view.js').then((m) => {
          const item = { direction: 'out', status: 'queued', receipts: null, error: null };
          return m.tickOf(item).symbol + ' ' + m.tickOf(item).label;
        })`),
      ).toBe('◷ Queued');

      // The chart: drawn, with the hour's messages in it.
      const chart = page.locator('#activity-chart');
      await page.locator('#activity-chart[data-total]').waitFor();
      expect(Number(await chart.getAttribute('data-buckets'))).toBe(60);
      expect(Number(await chart.getAttribute('data-total'))).toBe(8);
      expect(await page.locator('#activity-summary').textContent()).toMatch(
        /^In the last hour: 5 sent, 2 received, 1 failed\. AI latency: \d+ ms on average over 2 calls/,
      );
      const inked = await page.evaluate<number>(`(() => {
        const canvas = document.querySelector('#activity-chart canvas');
        const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
        let inked = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] > 0) inked++;
        return inked;
      })()`);
      expect(inked).toBeGreaterThan(500);
      for (const series of ['Sent', 'Received', 'Failed', 'AI latency avg', 'AI latency p95']) {
        await page.locator('#activity-chart .u-legend').getByText(series, { exact: true }).waitFor();
      }

      // The webhook and its failed delivery; Retry attempts it again now, and this time the receiver takes it.
      const row = page.locator(`#webhook-list tr[data-status="pending"]`);
      await row.waitFor();
      expect(await page.locator('#webhook-list .webhook-url').textContent()).toBe(receiver.url);
      expect(await row.locator('td[data-label="Event"]').textContent()).toBe('webhook.test');
      expect(await row.locator('td[data-label="Status"]').textContent()).toBe('retrying');
      expect(await row.locator('td[data-label="Code"]').textContent()).toBe('HTTP 500');
      expect(Number(await row.locator('td[data-label="Attempts"]').textContent())).toBe(attemptsBefore);
      await page.mouse.move(0, 0);
      await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-agent.png'), fullPage: true });

      receiver.respond(200);
      await row.getByRole('button', { name: 'Retry webhook.test delivery' }).click();
      await until(() => receiver.accepted().length === 1, 10_000);
      expect(receiver.received).toHaveLength(attemptsBefore + 1);
      expect(receiver.received.at(-1)?.event.type).toBe('webhook.test');
      await page.locator('#webhooks-result').getByText('is being attempted again').waitFor();
      const done = page.locator('#webhook-list tr[data-status="delivered"]');
      await done.waitFor();
      expect(await done.locator('td[data-label="Attempts"]').textContent()).toBe(String(attemptsBefore + 1));
      expect(await done.getByRole('button').count()).toBe(0);

      // A reload keeps the page (the key stays in the tab); Back goes to the sessions.
      await page.reload();
      await page.getByRole('heading', { name: `Agent ${AGENT}` }).waitFor();
      await page.locator('#message-list li', { hasText: 'This one bounces' }).waitFor();
      await page.locator('#activity-chart canvas').waitFor();
      await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-agent-retried.png'), fullPage: true });
      await page.getByRole('link', { name: 'All sessions' }).click();
      await page.locator('#sessions-title').waitFor();
      expect(await page.locator('#agent-view').isHidden()).toBe(true);
      expect(await page.evaluate('document.activeElement?.id')).toBe('sessions-title');
      // The detail panel links to it too.
      await page.locator(`button[data-open="${AGENT}"]`).click();
      await page.locator('#detail-agent-page').click();
      await page.getByRole('heading', { name: `Agent ${AGENT}` }).waitFor();

      expect(await page.evaluate('window.cspViolations')).toBeUndefined();
      expect(errors).toEqual([]);
    } finally {
      await close();
    }
  }, 90_000);

  it('fits a phone-sized screen, opened straight from its address', async () => {
    const { page, errors, close } = await openPage({ width: 390, height: 844 }, `${base}/dashboard/#/agents/${AGENT}`);
    try {
      await signIn(page);
      await page.getByRole('heading', { name: `Agent ${AGENT}` }).waitFor();
      await page.locator('#message-list li', { hasText: 'This one bounces' }).waitFor();
      await page.locator('#activity-chart canvas').waitFor();
      await page.locator('#webhook-list tr[data-status="delivered"]').waitFor();
      const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
      expect(overflow).toBeLessThanOrEqual(0);
      // Every control has a name; the chart is an image described by its caption.
      const unnamed = await page.evaluate<string[]>(
        `[...document.querySelectorAll('#agent-view button, #agent-view a')]
          .filter((e) => !(e.getAttribute('aria-label') || e.textContent.trim())).map((e) => e.outerHTML)`,
      );
      expect(unnamed).toEqual([]);
      expect(await page.getByRole('img', { name: /^In the last hour: 5 sent/ }).count()).toBe(1);
      await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-agent-phone.png'), fullPage: true });
      expect(await page.evaluate('window.cspViolations')).toBeUndefined();
      expect(errors).toEqual([]);
    } finally {
      await close();
    }
  }, 60_000);
});
