// The operator dashboard: sign in with the admin key, watch sessions live, link phones, manage and test agents.
import { ApiError, createApi } from './api.js';
import { openEventStream } from './event-stream.js';

const KEY_STORAGE = 'wamt.dashboard.adminKey';
const PAGE_SIZE = 200;

const $ = (id) => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`dashboard: #${id} is missing`);
  return element;
};

const state = {
  /** @type {Map<string, any>} agentId → SessionStatus */
  sessions: new Map(),
  /** @type {string | null} */
  selected: null,
  /** @type {{ stop(): void } | null} */
  stream: null,
  connects: 0,
  /** @type {Map<string, number>} agentId → how many `session` events came; a newer event beats an older reply */
  eventCount: new Map(),
};

const api = createApi(() => sessionStorage.getItem(KEY_STORAGE));

// ---- helpers ----------------------------------------------------------------------------------------------------

const path = (agentId, suffix = '') => `/sessions/${encodeURIComponent(agentId)}${suffix}`;

function announce(text) {
  const announcer = $('announcer');
  announcer.textContent = '';
  // A fresh text node after a tick makes screen readers read the same words twice in a row too.
  setTimeout(() => {
    announcer.textContent = text;
  }, 50);
}

function showMessage(id, text, kind = 'info') {
  const element = $(id);
  element.textContent = text;
  element.dataset.kind = kind;
  element.classList.toggle('error', kind === 'error');
  element.classList.toggle('success', kind === 'success');
}

function errorText(err) {
  if (err instanceof ApiError) {
    if (err.code === 'ENGINE_UNSUPPORTED') {
      return `This agent's engine has no pairing codes: scan the QR code instead. (${err.code}, HTTP ${err.status})`;
    }
    if (err.status === 404 && err.code === 'NOT_FOUND') {
      return `This service has no such endpoint yet: ${err.describe()}`;
    }
    return err.describe();
  }
  return err instanceof Error ? err.message : String(err);
}

/** Runs an API call for a form or button: disables it meanwhile and signs out when the key is refused. */
async function guarded(control, resultId, action) {
  control.setAttribute('aria-busy', 'true');
  if ('disabled' in control) control.disabled = true;
  try {
    return await action();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      signOut('The service refused the admin key. Sign in again.');
      return undefined;
    }
    showMessage(resultId, errorText(err), 'error');
    return undefined;
  } finally {
    control.removeAttribute('aria-busy');
    if ('disabled' in control) control.disabled = false;
  }
}

function formatNumber(jid) {
  if (!jid) return '—';
  const digits = /^(\d+)@/.exec(jid)?.[1];
  return digits ? `+${digits}` : jid;
}

function formatTime(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** One word or two for the state an operator cares about. */
function statusLabel(session) {
  const live = session.liveState;
  if (live.isReady) return { text: 'connected', tone: 'ok' };
  switch (live.sessionState) {
    case 'qr':
      return { text: 'waiting for scan', tone: 'wait' };
    case 'starting':
    case 'authenticated':
      return { text: live.sessionState, tone: 'wait' };
    case 'reconnecting':
      return { text: 'reconnecting', tone: 'wait' };
    case 'auth_failed':
      return { text: 'auth failed', tone: 'bad' };
    case 'logged_out':
      return { text: 'logged out', tone: 'bad' };
    default:
      return { text: session.status.replaceAll('_', ' '), tone: session.status === 'connected' ? 'wait' : 'idle' };
  }
}

// ---- sessions table ---------------------------------------------------------------------------------------------

const COLUMNS = ['Agent', 'User', 'Engine', 'Status', 'Connected number', 'Last connected', 'Last error'];

function renderRow(session) {
  const body = $('sessions-body');
  let row = body.querySelector(`tr[data-agent="${CSS.escape(session.agentId)}"]`);
  if (!row) {
    row = document.createElement('tr');
    row.dataset.agent = session.agentId;
    for (const label of COLUMNS) {
      const cell = document.createElement('td');
      cell.dataset.label = label;
      row.append(cell);
    }
    const open = document.createElement('button');
    open.type = 'button';
    open.className = 'link';
    open.dataset.open = session.agentId;
    open.textContent = session.agentId;
    const name = document.createElement('span');
    name.className = 'sub';
    row.cells[0].append(open, name);
    body.append(row);
  }
  const label = statusLabel(session);
  const error = session.liveState.lastError ?? session.lastError;
  row.cells[0].querySelector('.sub').textContent = session.agentName ?? '';
  row.cells[1].textContent = session.userId;
  row.cells[2].textContent = session.engine;
  row.cells[3].replaceChildren(badge(label));
  row.cells[4].textContent = formatNumber(session.liveState.me);
  row.cells[5].textContent = formatTime(session.lastConnectedAt);
  row.cells[6].textContent = error ?? '—';
  row.classList.toggle('selected', state.selected === session.agentId);
}

function badge({ text, tone }) {
  const element = document.createElement('span');
  element.className = `badge ${tone}`;
  element.textContent = text;
  return element;
}

function renderEmpty() {
  $('sessions-empty').hidden = state.sessions.size > 0;
  $('sessions-table').hidden = state.sessions.size === 0;
}

async function loadSessions() {
  const all = [];
  for (let offset = 0; ; offset += PAGE_SIZE) {
    const { data } = await api.get(`/sessions?limit=${PAGE_SIZE}&offset=${offset}`);
    all.push(...data.items);
    if (all.length >= data.total || data.items.length === 0) break;
  }
  state.sessions = new Map(all.map((s) => [s.agentId, s]));
  $('sessions-body').replaceChildren();
  for (const session of all) renderRow(session);
  renderEmpty();
  if (state.selected && !state.sessions.has(state.selected)) closeDetail();
  else renderDetail();
  showMessage('sessions-error', '');
  return true;
}

function upsert(session) {
  const before = state.sessions.get(session.agentId);
  state.sessions.set(session.agentId, session);
  renderRow(session);
  renderEmpty();
  if (state.selected === session.agentId) renderDetail();
  const now = statusLabel(session).text;
  if (before && statusLabel(before).text !== now) announce(`${session.agentId}: ${now}`);
}

/** Applies the status an action returned, unless the stream has already brought something newer meanwhile. */
function applyReply(session, countBefore) {
  if ((state.eventCount.get(session.agentId) ?? 0) === countBefore) upsert(session);
}

function removeSession(agentId) {
  if (!state.sessions.delete(agentId)) return;
  $('sessions-body')
    .querySelector(`tr[data-agent="${CSS.escape(agentId)}"]`)
    ?.remove();
  renderEmpty();
  announce(`${agentId} was deleted`);
  if (state.selected === agentId) closeDetail();
}

// ---- detail panel -----------------------------------------------------------------------------------------------

function openDetail(agentId) {
  const changed = state.selected !== agentId;
  state.selected = agentId;
  for (const row of $('sessions-body').rows) row.classList.toggle('selected', row.dataset.agent === agentId);
  if (changed) {
    for (const id of ['pairing-result', 'action-result', 'send-result', 'qr-error']) showMessage(id, '');
  }
  $('detail').hidden = false;
  renderDetail();
  $('detail-title').focus();
}

function closeDetail() {
  const agentId = state.selected;
  state.selected = null;
  $('detail').hidden = true;
  for (const row of $('sessions-body').rows) row.classList.remove('selected');
  const button = agentId && document.querySelector(`button[data-open="${CSS.escape(agentId)}"]`);
  if (button) button.focus();
  else $('sessions-title').focus();
}

function renderDetail() {
  const session = state.selected ? state.sessions.get(state.selected) : undefined;
  if (!session) return;
  const live = session.liveState;
  const label = statusLabel(session);
  $('detail-agent').textContent = session.agentId;
  const status = $('detail-status');
  status.textContent = label.text;
  status.className = `badge ${label.tone}`;

  // Pairing only makes sense while the phone is not linked yet.
  $('pairing-form').hidden = live.isReady;

  const image = /** @type {HTMLImageElement} */ ($('qr-image'));
  const qrBox = $('qr-box');
  if (live.isReady) {
    image.hidden = true;
    image.removeAttribute('src');
    qrBox.dataset.state = 'connected';
    showMessage('qr-message', `Connected as ${formatNumber(live.me)}.`, 'success');
    $('show-qr').hidden = true;
  } else if (live.qr) {
    const src = `data:${live.qr.contentType};base64,${live.qr.base64}`;
    if (image.getAttribute('src') !== src) image.src = src;
    image.hidden = false;
    qrBox.dataset.state = 'qr';
    const updated = live.qrUpdatedAt ? ` Updated ${new Date(live.qrUpdatedAt).toLocaleTimeString()}.` : '';
    const pairing = live.pairingCode ? ` Pairing code: ${live.pairingCode}.` : '';
    showMessage('qr-message', `Scan it with the phone; it renews by itself.${updated}${pairing}`);
    $('show-qr').hidden = true;
  } else {
    image.hidden = true;
    image.removeAttribute('src');
    const waiting = ['starting', 'authenticated', 'reconnecting'].includes(live.sessionState);
    qrBox.dataset.state = waiting ? 'waiting' : 'none';
    showMessage('qr-message', waiting ? 'Waiting for a QR code…' : 'No QR code is showing.');
    $('show-qr').hidden = waiting;
  }
}

// ---- actions ----------------------------------------------------------------------------------------------------

/** Asks in a modal dialog; resolves true only for the confirm button. */
function confirmAction(title, text, confirmLabel) {
  const dialog = /** @type {HTMLDialogElement} */ ($('confirm-dialog'));
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = confirmLabel;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'confirm'), { once: true });
    dialog.showModal();
  });
}

async function onCreate(event) {
  event.preventDefault();
  const form = /** @type {HTMLFormElement} */ (event.currentTarget);
  if (!form.reportValidity()) return;
  const fields = new FormData(form);
  const body = {
    userId: String(fields.get('userId')).trim(),
    agentId: String(fields.get('agentId')).trim(),
    agentName: String(fields.get('agentName')).trim(),
  };
  const apikey = String(fields.get('apikey') ?? '');
  if (apikey) body.apikey = apikey;
  const engine = String(fields.get('engine') ?? '');
  if (engine) body.engine = engine;
  showMessage('create-result', 'Creating…');
  const submit = form.querySelector('button[type="submit"]');
  const before = state.eventCount.get(body.agentId) ?? 0;
  const result = await guarded(submit, 'create-result', () => api.post('/sessions', body));
  if (!result) return;
  applyReply(result.data, before);
  showMessage('create-result', `Session ${result.data.agentId} created.`, 'success');
  form.reset();
  openDetail(result.data.agentId);
}

async function onShowQr() {
  const agentId = state.selected;
  if (!agentId) return;
  showMessage('qr-error', '');
  showMessage('qr-message', 'Waiting for a QR code (up to a minute)…');
  const result = await guarded($('show-qr'), 'qr-error', () => api.post(path(agentId, '/qr')));
  const session = state.sessions.get(agentId);
  if (!result || !session) return;
  upsert({ ...session, liveState: { ...session.liveState, qr: result.data.qr, qrUpdatedAt: result.data.qrUpdatedAt } });
}

async function onPairing(event) {
  event.preventDefault();
  const agentId = state.selected;
  const form = /** @type {HTMLFormElement} */ (event.currentTarget);
  if (!agentId || !form.reportValidity()) return;
  const phone = String(new FormData(form).get('phone')).trim();
  showMessage('pairing-result', 'Asking for a pairing code…');
  const submit = form.querySelector('button[type="submit"]');
  const result = await guarded(submit, 'pairing-result', () => api.post(path(agentId, '/pairing-code'), { phone }));
  if (!result) return;
  showMessage('pairing-result', `Pairing code: ${result.data.code}. Type it on the phone.`, 'success');
}

async function onReconnect() {
  const agentId = state.selected;
  if (!agentId) return;
  const ok = await confirmAction(
    `Reconnect ${agentId}?`,
    'This logs the phone out, clears the stored login and shows a new QR code. The session row stays.',
    'Reconnect',
  );
  if (!ok) {
    $('reconnect').focus();
    return;
  }
  showMessage('action-result', 'Reconnecting…');
  const before = state.eventCount.get(agentId) ?? 0;
  const result = await guarded($('reconnect'), 'action-result', () => api.post(path(agentId, '/reconnect')));
  $('reconnect').focus();
  if (!result) return;
  applyReply(result.data, before);
  showMessage('action-result', `${agentId} is starting again; scan the new QR code.`, 'success');
}

async function onDelete() {
  const agentId = state.selected;
  if (!agentId) return;
  const ok = await confirmAction(
    `Delete ${agentId}?`,
    'This logs the phone out, deletes the stored login and the session, and drops its queued messages.',
    'Delete',
  );
  if (!ok) {
    $('delete').focus();
    return;
  }
  const result = await guarded($('delete'), 'action-result', () => api.delete(path(agentId)));
  if (!result) return;
  removeSession(agentId);
}

async function onSend(event) {
  event.preventDefault();
  const agentId = state.selected;
  const form = /** @type {HTMLFormElement} */ (event.currentTarget);
  if (!agentId || !form.reportValidity()) return;
  const fields = new FormData(form);
  const body = { to: String(fields.get('to')).trim(), message: String(fields.get('message')) };
  showMessage('send-result', 'Sending…');
  const submit = form.querySelector('button[type="submit"]');
  const result = await guarded(submit, 'send-result', () =>
    api.post(`/agents/${encodeURIComponent(agentId)}/messages`, body),
  );
  if (!result) return;
  const { delivered, messageId, status } = result.data ?? {};
  showMessage(
    'send-result',
    delivered ? `Sent (message id ${messageId}).` : `Accepted, ${status ?? 'queued'} (message id ${messageId}).`,
    'success',
  );
}

// ---- live updates -----------------------------------------------------------------------------------------------

const STREAM_TEXT = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  unauthorized: 'Not authorized',
  offline: 'Not connected',
};

function setStreamState(name, detail = {}) {
  const element = $('stream-state');
  element.dataset.state = name;
  if (name === 'live') element.dataset.connects = String(++state.connects);
  const seconds = detail.delayMs ? ` in ${Math.ceil(detail.delayMs / 1000)} s` : '';
  $('stream-text').textContent = name === 'reconnecting' ? `Reconnecting${seconds}…` : STREAM_TEXT[name];
}

function startStream() {
  state.stream?.stop();
  state.stream = openEventStream({
    url: '/events/sessions',
    getKey: () => sessionStorage.getItem(KEY_STORAGE),
    onState(name, detail) {
      setStreamState(name, detail);
      if (name === 'unauthorized') signOut('The service refused the admin key. Sign in again.');
    },
    onEvent(event, data) {
      // Every (re)connection starts from a fresh list; events after `hello` keep it current.
      if (event === 'hello') loadSessions().catch((err) => showMessage('sessions-error', errorText(err), 'error'));
      else if (event === 'session') {
        state.eventCount.set(data.agentId, (state.eventCount.get(data.agentId) ?? 0) + 1);
        upsert(data);
      } else if (event === 'removed') removeSession(data.agentId);
    },
  });
}

// ---- sign in and out --------------------------------------------------------------------------------------------

function showApp() {
  $('sign-in-view').hidden = true;
  $('app-view').hidden = false;
  $('sign-out').hidden = false;
  startStream();
}

function signOut(reason = '') {
  state.stream?.stop();
  state.stream = null;
  sessionStorage.removeItem(KEY_STORAGE);
  state.sessions.clear();
  state.selected = null;
  $('sessions-body').replaceChildren();
  $('detail').hidden = true;
  $('app-view').hidden = true;
  $('sign-out').hidden = true;
  $('sign-in-view').hidden = false;
  setStreamState('offline');
  showMessage('sign-in-error', reason, 'error');
  $('admin-key').focus();
}

/**
 * Checks the key against the event stream, which only the admin key opens (GET /sessions would also let
 * anyone in when SESSIONS_AUTH=none); the stream is dropped as soon as its answer has arrived.
 */
async function verifyAdminKey(key) {
  const controller = new AbortController();
  let response;
  try {
    response = await fetch('/events/sessions', {
      headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream' },
      cache: 'no-store',
      signal: controller.signal,
    });
  } catch {
    throw new ApiError(0, 'NETWORK_ERROR', 'The service could not be reached', undefined);
  }
  if (response.ok) {
    controller.abort();
    return;
  }
  const body = await response.json().catch(() => undefined);
  throw new ApiError(
    response.status,
    body?.error?.code ?? `HTTP_${response.status}`,
    body?.error?.message ?? 'The request failed',
    body?.error?.traceId,
  );
}

async function onSignIn(event) {
  event.preventDefault();
  const input = /** @type {HTMLInputElement} */ ($('admin-key'));
  const key = input.value.trim();
  if (!key) {
    showMessage('sign-in-error', 'Enter the admin key.', 'error');
    input.focus();
    return;
  }
  try {
    await verifyAdminKey(key);
  } catch (err) {
    const text =
      err instanceof ApiError && err.status === 401
        ? 'That key is not valid.'
        : err instanceof ApiError && err.status === 403
          ? 'That is an agent key; the dashboard needs the admin key.'
          : errorText(err);
    showMessage('sign-in-error', text, 'error');
    input.focus();
    return;
  }
  sessionStorage.setItem(KEY_STORAGE, key);
  input.value = '';
  showMessage('sign-in-error', '');
  showApp();
  $('sessions-title').focus();
}

function init() {
  $('sign-in-form').addEventListener('submit', onSignIn);
  $('sign-out').addEventListener('click', () => signOut());
  $('refresh').addEventListener('click', () =>
    guarded($('refresh'), 'sessions-error', loadSessions).then((done) => done && announce('Sessions refreshed')),
  );
  $('sessions-body').addEventListener('click', (event) => {
    const button = event.target instanceof Element ? event.target.closest('button[data-open]') : null;
    if (button instanceof HTMLElement && button.dataset.open) openDetail(button.dataset.open);
  });
  $('detail-close').addEventListener('click', closeDetail);
  $('show-qr').addEventListener('click', onShowQr);
  $('pairing-form').addEventListener('submit', onPairing);
  $('reconnect').addEventListener('click', onReconnect);
  $('delete').addEventListener('click', onDelete);
  $('send-form').addEventListener('submit', onSend);
  $('create-form').addEventListener('submit', onCreate);
  if (sessionStorage.getItem(KEY_STORAGE)) showApp();
  else $('admin-key').focus();
}

init();
