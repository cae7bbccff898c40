// The operator dashboard: sign in with the admin key, watch sessions live, link phones, manage and test agents.
import { createAgentView } from './agent-view.js';
import { ApiError, createApi } from './api.js';
import { renderCluster } from './cluster-view.js';
import { openEventStream } from './event-stream.js';
import {
  $,
  announce,
  applyReply,
  closeDetail,
  openDetail,
  removeSession,
  renderDetail,
  renderEmpty,
  renderRow,
  showMessage,
  state,
  upsert,
} from './sessions-view.js';

const KEY_STORAGE = 'wamt.dashboard.adminKey';
const PAGE_SIZE = 200;
/** The cluster panel is read again this often, and shortly after session events (leases move with sessions). */
const CLUSTER_REFRESH_MS = 10_000;
const CLUSTER_AFTER_EVENT_MS = 1_000;

const api = createApi(() => sessionStorage.getItem(KEY_STORAGE));

const path = (agentId, suffix = '') => `/sessions/${encodeURIComponent(agentId)}${suffix}`;

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

// ---- agent page (#/agents/{agentId}) ------------------------------------------------------------------------------

const agentView = createAgentView({
  api,
  guarded,
  errorText,
  onUnauthorized: () => signOut('The service refused the admin key. Sign in again.'),
});

const AGENT_ROUTE = /^#\/agents\/([A-Za-z0-9_-]{1,64})$/;

/** Shows the view the address names: an agent's page, or the sessions overview. */
function route() {
  if ($('app-view').hidden) return;
  const agentId = AGENT_ROUTE.exec(location.hash)?.[1];
  if (agentId) {
    $('overview').hidden = true;
    void agentView.show(agentId);
  } else if (agentView.hide() || $('overview').hidden) {
    $('overview').hidden = false;
    // Back from an agent page: focus to the list's heading, where the keyboard left off.
    $('sessions-title').focus();
  }
}

// ---- cluster panel -----------------------------------------------------------------------------------------------

const cluster = {
  /** @type {ReturnType<typeof setInterval> | undefined} */
  interval: undefined,
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  soon: undefined,
  /** @type {Promise<boolean> | undefined} */
  loading: undefined,
};

/** Reads GET /cluster and renders it; one read at a time. */
function loadCluster() {
  cluster.loading ??= api
    .get('/cluster')
    .then(({ data }) => {
      if ($('app-view').hidden) return false;
      renderCluster(data);
      showMessage('cluster-error', '');
      return true;
    })
    .finally(() => {
      cluster.loading = undefined;
    });
  return cluster.loading;
}

/** A refresh nobody clicked: errors show in the panel; a refused key signs out. */
function refreshCluster() {
  loadCluster().catch((err) => {
    if (err instanceof ApiError && err.status === 401) signOut('The service refused the admin key. Sign in again.');
    else showMessage('cluster-error', errorText(err), 'error');
  });
}

/** After a burst of session events, one read a second later. */
function refreshClusterSoon() {
  if (cluster.soon !== undefined) return;
  cluster.soon = setTimeout(() => {
    cluster.soon = undefined;
    refreshCluster();
  }, CLUSTER_AFTER_EVENT_MS);
}

function startClusterRefresh() {
  stopClusterRefresh();
  refreshCluster();
  cluster.interval = setInterval(() => {
    if (document.visibilityState !== 'hidden') refreshCluster();
  }, CLUSTER_REFRESH_MS);
}

function stopClusterRefresh() {
  clearInterval(cluster.interval);
  clearTimeout(cluster.soon);
  cluster.interval = undefined;
  cluster.soon = undefined;
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
      if (event === 'hello') {
        loadSessions().catch((err) => showMessage('sessions-error', errorText(err), 'error'));
        refreshClusterSoon();
      } else if (event === 'session') {
        state.eventCount.set(data.agentId, (state.eventCount.get(data.agentId) ?? 0) + 1);
        upsert(data);
        agentView.renderSession(data);
        refreshClusterSoon();
      } else if (event === 'removed') {
        removeSession(data.agentId);
        refreshClusterSoon();
      }
    },
  });
}

// ---- sign in and out --------------------------------------------------------------------------------------------

function showApp() {
  $('sign-in-view').hidden = true;
  $('app-view').hidden = false;
  $('sign-out').hidden = false;
  startStream();
  startClusterRefresh();
  route();
}

function signOut(reason = '') {
  state.stream?.stop();
  state.stream = null;
  stopClusterRefresh();
  sessionStorage.removeItem(KEY_STORAGE);
  state.sessions.clear();
  state.selected = null;
  $('sessions-body').replaceChildren();
  $('cluster-body').replaceChildren();
  $('cluster-summary').textContent = '';
  $('cluster-updated').textContent = '';
  showMessage('cluster-error', '');
  $('detail').hidden = true;
  agentView.hide();
  $('overview').hidden = false;
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
  if (!$('overview').hidden) $('sessions-title').focus();
}

function init() {
  $('sign-in-form').addEventListener('submit', onSignIn);
  $('sign-out').addEventListener('click', () => signOut());
  $('refresh').addEventListener('click', () =>
    guarded($('refresh'), 'sessions-error', loadSessions).then((done) => done && announce('Sessions refreshed')),
  );
  $('cluster-refresh').addEventListener('click', () =>
    guarded($('cluster-refresh'), 'cluster-error', loadCluster).then((done) => done && announce('Cluster refreshed')),
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
  window.addEventListener('hashchange', route);
  if (sessionStorage.getItem(KEY_STORAGE)) showApp();
  else $('admin-key').focus();
}

init();
