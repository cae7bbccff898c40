// The dashboard: its static files, and the whole operator flow in headless Chromium.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DASHBOARD_ROOT } from '../src/dashboard/dashboard.routes.js';
import { ADMIN_KEY, createTestApp, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase, usingPostgres } from './helpers/database.js';

interface MemberView {
  instanceId: string;
  sessions: number;
  self: boolean;
}

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
const ARTIFACTS = path.resolve('test-artifacts');

if (!hasChromium) {
  console.warn(`[dashboard] browser tests SKIPPED: ${CHROMIUM} is missing (apt-get install -y chromium)`);
}

let db: TestDatabase;
let t: TestApp;
let base: string;

// PGlite takes a while to start on a busy machine; allow more than the default hook timeout.
beforeAll(async () => {
  db = await createTestDatabase();
  t = await createTestApp({ database: db.database });
  base = await t.app.listen({ port: 0, host: '127.0.0.1' });
}, 180_000);
afterAll(async () => {
  await t?.close();
  await db?.drop();
});

const api = (method: string, url: string, body?: unknown) =>
  fetch(`${base}${url}`, {
    method,
    headers: { ...t.admin, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? null : JSON.stringify(body),
  });

describe('/dashboard static files', () => {
  it('redirects /dashboard to /dashboard/ and serves the page with a strict CSP', async () => {
    const redirect = await t.app.inject({ method: 'GET', url: '/dashboard' });
    expect(redirect.statusCode).toBe(301);
    expect(redirect.headers.location).toBe('/dashboard/');
    const page = await t.app.inject({ method: 'GET', url: '/dashboard/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toContain('<label for="admin-key">Admin key</label>');
    // The owner of each session, and the cluster panel that GET /cluster feeds.
    expect(page.body).toMatch(/<th scope="col"[^>]*>Owner<\/th>/);
    expect(page.body).toContain('id="detail-owner"');
    for (const id of ['cluster-panel', 'cluster-summary', 'cluster-body', 'cluster-refresh', 'cluster-error']) {
      expect(page.body, id).toContain(`id="${id}"`);
    }
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    // Nothing is loaded from another origin.
    expect(page.body).not.toMatch(/(src|href)="(https?:)?\/\//);
  });

  it('serves the modules and the stylesheet with their types, and nothing outside the folder', async () => {
    for (const [file, type] of [
      ['app.js', /javascript/],
      ['api.js', /javascript/],
      ['event-stream.js', /javascript/],
      ['sessions-view.js', /javascript/],
      ['cluster-view.js', /javascript/],
      ['dashboard.css', /^text\/css/],
    ] as const) {
      const res = await t.app.inject({ method: 'GET', url: `/dashboard/${file}` });
      expect(res.statusCode, file).toBe(200);
      expect(res.headers['content-type'], file).toMatch(type);
    }
    for (const url of ['/dashboard/../package.json', '/dashboard/%2e%2e/package.json', '/dashboard/missing.js']) {
      expect((await t.app.inject({ method: 'GET', url })).statusCode, url).toBe(404);
    }
  });

  it('wires the owner column and the cluster panel into its modules', async () => {
    const file = async (name: string) => (await t.app.inject({ method: 'GET', url: `/dashboard/${name}` })).body;
    const app = await file('app.js');
    expect(app).toContain("import { renderCluster } from './cluster-view.js';");
    expect(app).toMatch(/\.get\('\/cluster'\)/);
    const view = await file('sessions-view.js');
    expect(view).toContain("'Status', 'Owner', 'Connected number'");
    expect(view).toContain("session.owner ?? '—'");
    // Text from the service goes in through textContent only: no HTML is ever parsed from it.
    for (const name of ['app.js', 'sessions-view.js', 'cluster-view.js']) {
      expect(await file(name), name).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
    }
  });

  it('finds its folder at the repository root, where src/ and dist/ both resolve it', () => {
    expect(DASHBOARD_ROOT).toBe(`${path.resolve('public/dashboard')}${path.sep}`);
    const fromDist = new URL(
      '../../public/dashboard/',
      new URL('../dist/dashboard/dashboard.routes.js', import.meta.url),
    );
    expect(fromDist.pathname).toBe(new URL('../public/dashboard/', import.meta.url).pathname);
  });

  it('stays out of the OpenAPI document', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/docs/json' })).json();
    expect(Object.keys(doc.paths).filter((p) => p.startsWith('/dashboard'))).toEqual([]);
  });
});

describe.skipIf(!hasChromium)('dashboard in a real browser', () => {
  let browser: Browser;

  beforeAll(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    // Playwright gives every launch a fresh temporary profile (it refuses --user-data-dir in launch()).
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-quic',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });
  afterAll(async () => {
    await browser?.close();
  });

  /** Opens the page in a fresh context and collects script errors, which must stay empty. */
  async function openPage(viewport: { width: number; height: number }) {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    page.on('console', (message) => {
      // Failed requests the page handles itself (the 404 of a missing endpoint) are logged by Chromium too.
      if (message.type() === 'error' && !/Failed to load resource/.test(message.text())) errors.push(message.text());
    });
    await page.goto(`${base}/dashboard`);
    return { page, errors, close: () => context.close() };
  }

  async function signIn(page: Page, key = ADMIN_KEY) {
    await page.getByLabel('Admin key').fill(key);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }

  // Browser-side code is passed as strings: the test program is compiled without the DOM types.
  const focusedId = (page: Page) => page.evaluate('document.activeElement?.id');

  const statusOf = (page: Page, agentId: string) =>
    page.locator(`#sessions-body tr[data-agent="${agentId}"] td[data-label="Status"]`);
  const ownerOf = (page: Page, agentId: string) =>
    page.locator(`#sessions-body tr[data-agent="${agentId}"] td[data-label="Owner"]`);
  const memberCell = (page: Page, instanceId: string, label: string) =>
    page.locator(`#cluster-body tr[data-instance="${instanceId}"] td[data-label="${label}"]`);

  it('signs in, creates a sandbox session, shows its QR, turns connected live, sends, reconnects and deletes', async () => {
    const { page, errors, close } = await openPage({ width: 1280, height: 900 });
    try {
      await signIn(page, 'not-the-key');
      await page.getByRole('alert').filter({ hasText: 'That key is not valid.' }).waitFor();
      await signIn(page);
      await page.locator('#stream-state[data-state="live"]').waitFor();
      await page.getByText('No sessions yet.').waitFor();
      expect(await focusedId(page)).toBe('sessions-title');
      expect(await page.evaluate('sessionStorage.length')).toBe(1);

      // Every form control has a label.
      const unlabeled = await page.evaluate(
        `[...document.querySelectorAll('input, select, textarea')]
          .filter((c) => !c.labels?.length && !c.getAttribute('aria-label')).map((c) => c.id)`,
      );
      expect(unlabeled).toEqual([]);

      await page.getByLabel('User id').fill('user-e2e');
      await page.getByLabel('Agent id').fill('e2e-bot');
      await page.getByLabel('Agent name').fill('E2E Bot');
      await page.getByLabel('Agent API key').fill('e2e-agent-key');
      await page.getByLabel('Engine').selectOption('sandbox');
      await page.getByRole('button', { name: 'Create session' }).click();
      await page.locator('#sessions-body tr[data-agent="e2e-bot"]').waitFor();
      await page.locator('#detail').waitFor();
      // This instance runs it (on PostgreSQL it took the lease at creation): the row and the panel name it, and the
      // cluster panel counts it for this instance, a second after the event.
      const self = t.container.cluster.instanceId;
      await ownerOf(page, 'e2e-bot').getByText(self, { exact: true }).waitFor();
      expect(await page.locator('#detail-owner').textContent()).toBe(self);
      await memberCell(page, self, 'Sessions').getByText('1', { exact: true }).waitFor();
      // The key given is shorter than 16 characters: the row and the panel say so (the key itself is never sent).
      await statusOf(page, 'e2e-bot').getByText('weak key').waitFor();
      await page.locator('#detail-weak-key').waitFor({ state: 'visible' });
      const qr = page.locator('#qr-image');
      await qr.waitFor({ state: 'visible' });
      expect(await qr.getAttribute('src')).toMatch(/^data:image\/png;base64,/);
      await page.waitForFunction(`document.getElementById('qr-image').naturalWidth > 0`);
      await statusOf(page, 'e2e-bot').getByText('waiting for scan').waitFor();
      await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-desktop-qr.png'), fullPage: true });

      // Pairing code: the sandbox engine has them.
      await page.getByLabel('Phone number', { exact: true }).fill('+62 811 000 111');
      await page.getByRole('button', { name: 'Get pairing code' }).click();
      await page
        .locator('#pairing-result')
        .getByText(/Pairing code: [A-Z0-9]{8}\./)
        .waitFor();
      // An engine without pairing codes answers 501; the sandbox has them, so the answer is played here.
      await page.route('**/sessions/e2e-bot/pairing-code', (route) =>
        route.fulfill({
          status: 501,
          contentType: 'application/json',
          body: JSON.stringify({
            error: { code: 'ENGINE_UNSUPPORTED', message: "This agent's engine does not support this.", traceId: 'tr' },
          }),
        }),
      );
      await page.getByRole('button', { name: 'Get pairing code' }).click();
      await page.locator('#pairing-result').getByText('scan the QR code instead').waitFor();
      expect(await page.locator('#pairing-result').textContent()).toContain('ENGINE_UNSUPPORTED, HTTP 501');
      await page.unroute('**/sessions/e2e-bot/pairing-code');

      // The phone scans: the page turns connected through the event stream, without a reload.
      await page.evaluate('window.notReloaded = true');
      expect((await api('POST', '/sandbox/agents/e2e-bot/scan', { phone: '6281234567890' })).status).toBe(200);
      await page.locator('#detail-status').getByText('connected', { exact: true }).waitFor();
      await page.locator('#qr-message').getByText('Connected as +6281234567890.').waitFor();
      await statusOf(page, 'e2e-bot').getByText('connected', { exact: true }).waitFor();
      expect(await qr.isHidden()).toBe(true);
      const row = page.locator('#sessions-body tr[data-agent="e2e-bot"]');
      expect(await row.locator('td[data-label="Connected number"]').textContent()).toBe('+6281234567890');
      expect(await row.locator('td[data-label="Last connected"]').textContent()).not.toBe('—');
      expect(await page.evaluate('window.notReloaded')).toBe(true);
      await page.locator('#announcer').getByText('e2e-bot: connected').waitFor();
      await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-desktop-connected.png'), fullPage: true });

      // Send a test message.
      const text = 'Hello from the dashboard test';
      await page.getByLabel('To (phone number or JID)').fill('0812 3456 7890');
      await page.getByLabel('Message').fill(text);
      await page.getByRole('button', { name: 'Send', exact: true }).click();
      const result = page.locator('#send-result');
      await result.getByText(/^(Sent|Accepted)/).waitFor();
      expect(await result.textContent()).toMatch(/message id \S+/);
      const deadline = Date.now() + 10_000;
      for (;;) {
        const sent = (await (await api('GET', '/sandbox/agents/e2e-bot/sent')).json()) as {
          data: { to: string; kind: string; text?: string }[];
        };
        const found = sent.data.find((entry) => entry.kind === 'text' && entry.text === text);
        if (found) {
          expect(found.to).toBe('6281234567890@c.us');
          break;
        }
        if (Date.now() > deadline) throw new Error('the test message never reached the sandbox');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-desktop-send.png'), fullPage: true });

      // Reconnect asks first; Cancel changes nothing, Reconnect shows a fresh QR code.
      await page.getByRole('button', { name: 'Reconnect…' }).click();
      const dialog = page.getByRole('dialog', { name: 'Reconnect e2e-bot?' });
      await dialog.waitFor();
      await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-desktop-confirm.png') });
      await dialog.getByRole('button', { name: 'Cancel' }).click();
      await dialog.waitFor({ state: 'hidden' });
      expect(await page.locator('#detail-status').textContent()).toBe('connected');
      await page.getByRole('button', { name: 'Reconnect…' }).click();
      await dialog.getByRole('button', { name: 'Reconnect' }).click();
      await qr.waitFor({ state: 'visible' });
      await page.locator('#detail-status').getByText('waiting for scan').waitFor();

      // The API's errors show as they are: no sending while the phone is not linked.
      await page.getByRole('button', { name: 'Send', exact: true }).click();
      await result.getByText('SESSION_NOT_READY, HTTP 409').waitFor();

      // The stream drops (as a proxy or a network blip would do): the page reconnects and keeps updating.
      t.app.server.closeAllConnections();
      await page.locator('#stream-state[data-state="live"][data-connects="2"]').waitFor({ timeout: 15_000 });
      expect((await api('POST', '/sandbox/agents/e2e-bot/scan', {})).status).toBe(200);
      await page.locator('#detail-status').getByText('connected', { exact: true }).waitFor();

      // Delete asks first, then the row goes.
      await page.getByRole('button', { name: 'Delete…' }).click();
      await page.getByRole('dialog', { name: 'Delete e2e-bot?' }).getByRole('button', { name: 'Delete' }).click();
      await page.locator('#sessions-body tr[data-agent="e2e-bot"]').waitFor({ state: 'detached' });
      await page.getByText('No sessions yet.').waitFor();
      expect(await page.locator('#detail').isHidden()).toBe(true);
      expect((await api('GET', '/sessions/e2e-bot')).status).toBe(404);
      await memberCell(page, self, 'Sessions').getByText('0', { exact: true }).waitFor();

      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByLabel('Admin key').waitFor();
      expect(await page.evaluate('sessionStorage.length')).toBe(0);
      expect(errors).toEqual([]);
    } finally {
      await close();
    }
  }, 90_000);

  it('works on a phone-sized screen with the keyboard', async () => {
    expect(
      (
        await api('POST', '/sessions', {
          userId: 'u-phone',
          agentId: 'phone-bot',
          agentName: 'Phone',
          apikey: 'k',
          engine: 'sandbox',
        })
      ).status,
    ).toBe(200);
    expect(
      (
        await api('POST', '/sessions', {
          userId: 'u-phone',
          agentId: 'phone-bot-2',
          agentName: 'Phone 2',
          apikey: 'k',
          engine: 'sandbox',
        })
      ).status,
    ).toBe(200);
    const { page, errors, close } = await openPage({ width: 390, height: 844 });
    try {
      // The key field has focus on arrival; Tab moves to the button with a visible focus ring.
      expect(await focusedId(page)).toBe('admin-key');
      // An agent's own key does not open the dashboard, and the page says why.
      await signIn(page, 'k');
      await page
        .getByRole('alert')
        .filter({ hasText: 'That is an agent key; the dashboard needs the admin key.' })
        .waitFor();
      expect(await focusedId(page)).toBe('admin-key');
      await page.getByLabel('Admin key').fill('');
      await page.keyboard.press('Tab');
      expect(await page.evaluate('document.activeElement?.textContent')).toBe('Sign in');
      expect(await page.evaluate('getComputedStyle(document.activeElement).outlineStyle')).toBe('solid');

      await page.keyboard.press('Shift+Tab');
      await page.keyboard.type(ADMIN_KEY);
      await page.keyboard.press('Enter');
      await page.locator('#stream-state[data-state="live"]').waitFor();
      await page.locator('#sessions-body tr[data-agent="phone-bot"]').waitFor();
      const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
      expect(overflow).toBeLessThanOrEqual(0);
      await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-phone-list.png'), fullPage: true });

      await page.locator('button[data-open="phone-bot"]').focus();
      await page.keyboard.press('Enter');
      await page.locator('#qr-image').waitFor({ state: 'visible' });
      expect(await focusedId(page)).toBe('detail-title');
      await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-phone-detail.png'), fullPage: true });

      // Escape closes the confirmation dialog; focus returns to the button that opened it.
      await page.getByRole('button', { name: 'Delete…' }).focus();
      await page.keyboard.press('Enter');
      await page.getByRole('dialog', { name: 'Delete phone-bot?' }).waitFor();
      await page.keyboard.press('Escape');
      await page.getByRole('dialog').waitFor({ state: 'hidden' });
      expect(await focusedId(page)).toBe('delete');
      expect((await api('GET', '/sessions/phone-bot')).status).toBe(200);
      expect(errors).toEqual([]);
    } finally {
      await close();
    }
  }, 60_000);

  it('shows who runs each session and the cluster members, from GET /cluster and as the service reports them', async () => {
    const self = t.container.cluster.instanceId;
    const { database } = db;
    // A session nobody has started (no stored login, no QR code asked for): no instance runs it, so no owner.
    await database.query(
      // Written an hour ago: not one being created, which its creator's claim would take, so the next tick takes it.
      `INSERT INTO whatsapp_user (user_id, agent_id, engine, created_at)
       VALUES ('u-idle', 'idle-bot', 'sandbox', now() - interval '1 hour')`,
    );
    // On PostgreSQL, a member that stopped heartbeating 30 s ago: listed as gone until it is forgotten (a minute).
    // Its id is HTML, which the page must show as text.
    const gone = '<img src=x onerror="window.pwned=1">';
    if (usingPostgres()) {
      await database.query(
        `INSERT INTO cluster_members (instance_id, incarnation, url, max_sessions, started_at, heartbeat_at)
         VALUES ($1, 'gone', 'http://10.0.0.9:3000', 50, now() - interval '1 hour', now() - interval '30 seconds')`,
        [gone],
      );
    }
    // phone-bot, phone-bot-2 and idle-bot: on PostgreSQL the next tick takes idle-bot's lease.
    const deadline = Date.now() + 15_000;
    for (;;) {
      const view = ((await (await api('GET', '/cluster')).json()) as { data: { members: MemberView[] } }).data;
      if (view.members.find((m) => m.self)?.sessions === 3) break;
      if (Date.now() > deadline) throw new Error(`the cluster never counted 3 sessions: ${JSON.stringify(view)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    const { page, errors, close } = await openPage({ width: 1280, height: 900 });
    try {
      await signIn(page);
      await page.locator('#stream-state[data-state="live"]').waitFor();
      await page.locator('#sessions-body tr[data-agent="idle-bot"]').waitFor();
      expect(await ownerOf(page, 'idle-bot').textContent()).toBe('—');
      expect(await ownerOf(page, 'phone-bot').textContent()).toBe(self);

      await memberCell(page, self, 'Sessions').getByText('3', { exact: true }).waitFor();
      expect(await memberCell(page, self, 'Instance').textContent()).toContain('this one');
      expect(await memberCell(page, self, 'State').textContent()).toMatch(/^live ?heartbeat \d+\.\d s ago$/);
      expect(await memberCell(page, self, 'Capacity').textContent()).toBe('—');
      expect(await page.locator('#cluster-updated').textContent()).toMatch(/^Updated /);
      if (usingPostgres()) {
        await page.locator('#cluster-summary').getByText('1 live member, 3 sessions owned.').waitFor();
        const row = page.locator('#cluster-body tr.gone');
        expect(await row.count()).toBe(1);
        expect(await row.locator('.instance').textContent()).toBe(gone);
        expect(await row.locator('td[data-label="Instance"] .sub').textContent()).toBe('http://10.0.0.9:3000');
        const state = (await row.locator('td[data-label="State"]').textContent()) ?? '';
        // 30 s when the row was written, plus however long the page took to get here.
        const age = Number(/^gone ?heartbeat (\d+) s ago$/.exec(state)?.[1]);
        expect(age, state).toBeGreaterThanOrEqual(30);
        expect(age, state).toBeLessThan(90);
        expect(await row.locator('td[data-label="Capacity"]').textContent()).toBe('50');
        expect(await row.locator('td[data-label="Sessions"]').textContent()).toBe('0');
      } else {
        await page
          .locator('#cluster-summary')
          .getByText('One process (embedded database): it runs every session.')
          .waitFor();
        expect(await page.locator('#cluster-body tr').count()).toBe(1);
      }

      // Three members as another cluster would answer, one of them gone, with text that is HTML: all of it shows as
      // text (the route is played by the test, so it is the same on either database).
      await page.route('**/cluster', (route) =>
        route.fulfill({
          status: 200,
          contentType: 'application/json',
          body: JSON.stringify({
            data: {
              self: 'wamt-a',
              single: false,
              members: [
                {
                  instanceId: 'wamt-a',
                  url: 'http://10.0.0.1:3000',
                  maxSessions: 200,
                  heartbeatAgeMs: 412,
                  live: true,
                  sessions: 120,
                  self: true,
                },
                {
                  instanceId: 'wamt-b',
                  url: null,
                  maxSessions: null,
                  heartbeatAgeMs: 2_950,
                  live: true,
                  sessions: 80,
                  self: false,
                },
                {
                  instanceId: '<b>wamt-c</b>',
                  url: '<i>x</i>',
                  maxSessions: 100,
                  heartbeatAgeMs: 185_000,
                  live: false,
                  sessions: 0,
                  self: false,
                },
              ],
            },
            traceId: 'tr',
          }),
        }),
      );
      await page.getByRole('button', { name: 'Refresh cluster' }).click();
      await page.locator('#cluster-summary').getByText('2 live members, 200 sessions owned.').waitFor();
      expect(await memberCell(page, 'wamt-a', 'State').textContent()).toBe('liveheartbeat 0.4 s ago');
      expect(await memberCell(page, 'wamt-a', 'Capacity').textContent()).toBe('200');
      expect(await memberCell(page, 'wamt-b', 'Capacity').textContent()).toBe('—');
      expect(await memberCell(page, 'wamt-b', 'Instance').textContent()).toBe('wamt-b');
      expect(await memberCell(page, '<b>wamt-c</b>', 'State').textContent()).toBe('goneheartbeat 3 min 5 s ago');
      expect(await memberCell(page, '<b>wamt-c</b>', 'Instance').textContent()).toBe('<b>wamt-c</b><i>x</i>');
      expect(await page.locator('#cluster-body b, #cluster-body i, #cluster-body img').count()).toBe(0);
      await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-desktop-cluster.png'), fullPage: true });

      // A member that cannot answer: the panel says so, and keeps what it showed.
      await page.unroute('**/cluster');
      await page.route('**/cluster', (route) =>
        route.fulfill({
          status: 503,
          contentType: 'application/json',
          body: JSON.stringify({
            error: { code: 'DATABASE_UNAVAILABLE', message: 'The database is unavailable', traceId: 'tr' },
          }),
        }),
      );
      await page.getByRole('button', { name: 'Refresh cluster' }).click();
      await page.locator('#cluster-error').getByText('DATABASE_UNAVAILABLE, HTTP 503').waitFor();
      expect(await page.locator('#cluster-body tr').count()).toBe(3);
      await page.unroute('**/cluster');
      await page.getByRole('button', { name: 'Refresh cluster' }).click();
      await memberCell(page, self, 'Sessions').getByText('3', { exact: true }).waitFor();
      expect(await page.locator('#cluster-error').textContent()).toBe('');

      expect(await page.evaluate('window.pwned')).toBeUndefined();
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByLabel('Admin key').waitFor();
      expect(await page.locator('#cluster-body tr').count()).toBe(0);
      expect(errors).toEqual([]);
    } finally {
      await close();
    }
  }, 60_000);
});
