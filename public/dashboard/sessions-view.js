// The page's view of the sessions: the shared state, the table, the detail panel and the small DOM helpers.

export const $ = (id) => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`dashboard: #${id} is missing`);
  return element;
};

export const state = {
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

// ---- helpers ----------------------------------------------------------------------------------------------------

export function announce(text) {
  const announcer = $('announcer');
  announcer.textContent = '';
  // A fresh text node after a tick makes screen readers read the same words twice in a row too.
  setTimeout(() => {
    announcer.textContent = text;
  }, 50);
}

export function showMessage(id, text, kind = 'info') {
  const element = $(id);
  element.textContent = text;
  element.dataset.kind = kind;
  element.classList.toggle('error', kind === 'error');
  element.classList.toggle('success', kind === 'success');
}

export function formatNumber(jid) {
  if (!jid) return '—';
  const digits = /^(\d+)@/.exec(jid)?.[1];
  return digits ? `+${digits}` : jid;
}

export function formatTime(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** One word or two for the state an operator cares about. */
export function statusLabel(session) {
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

/** The address of an agent's page (agent-view.js), linkable and kept across a reload. */
export const agentPageHref = (agentId) => `#/agents/${encodeURIComponent(agentId)}`;

// ---- sessions table ---------------------------------------------------------------------------------------------

const COLUMNS = ['Agent', 'User', 'Engine', 'Status', 'Owner', 'Connected number', 'Last connected', 'Last error'];

export function renderRow(session) {
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
    const page = document.createElement('a');
    page.className = 'row-link';
    page.href = agentPageHref(session.agentId);
    page.textContent = 'Agent page';
    page.setAttribute('aria-label', `Agent page of ${session.agentId}: chats, webhooks and activity`);
    row.cells[0].append(open, name, page);
    body.append(row);
  }
  const label = statusLabel(session);
  const error = session.liveState.lastError ?? session.lastError;
  row.cells[0].querySelector('.sub').textContent = session.agentName ?? '';
  row.cells[1].textContent = session.userId;
  row.cells[2].textContent = session.engine;
  row.cells[3].replaceChildren(badge(label), ...(session.weakApiKey ? [weakKeyBadge()] : []));
  // The instance that runs the session now; none while its lease moves, or before anyone has started it.
  row.cells[4].textContent = session.owner ?? '—';
  row.cells[5].textContent = formatNumber(session.liveState.me);
  row.cells[6].textContent = formatTime(session.lastConnectedAt);
  row.cells[7].textContent = error ?? '—';
  row.classList.toggle('selected', state.selected === session.agentId);
}

function badge({ text, tone }) {
  const element = document.createElement('span');
  element.className = `badge ${tone}`;
  element.textContent = text;
  return element;
}

/** The service says only that the key is short (under 16 characters); the key itself never reaches the page. */
const WEAK_KEY_HINT =
  "This agent's API key is shorter than 16 characters and can be guessed. Give it a long random key.";

function weakKeyBadge() {
  const element = badge({ text: 'weak key', tone: 'bad' });
  element.title = WEAK_KEY_HINT;
  return element;
}

export function renderEmpty() {
  $('sessions-empty').hidden = state.sessions.size > 0;
  $('sessions-table').hidden = state.sessions.size === 0;
}

export function upsert(session) {
  const before = state.sessions.get(session.agentId);
  state.sessions.set(session.agentId, session);
  renderRow(session);
  renderEmpty();
  if (state.selected === session.agentId) renderDetail();
  const now = statusLabel(session).text;
  if (before && statusLabel(before).text !== now) announce(`${session.agentId}: ${now}`);
}

/** Applies the status an action returned, unless the stream has already brought something newer meanwhile. */
export function applyReply(session, countBefore) {
  if ((state.eventCount.get(session.agentId) ?? 0) === countBefore) upsert(session);
}

export function removeSession(agentId) {
  if (!state.sessions.delete(agentId)) return;
  $('sessions-body')
    .querySelector(`tr[data-agent="${CSS.escape(agentId)}"]`)
    ?.remove();
  renderEmpty();
  announce(`${agentId} was deleted`);
  if (state.selected === agentId) closeDetail();
}

// ---- detail panel -----------------------------------------------------------------------------------------------

export function openDetail(agentId) {
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

export function closeDetail() {
  const agentId = state.selected;
  state.selected = null;
  $('detail').hidden = true;
  for (const row of $('sessions-body').rows) row.classList.remove('selected');
  const button = agentId && document.querySelector(`button[data-open="${CSS.escape(agentId)}"]`);
  if (button) button.focus();
  else $('sessions-title').focus();
}

export function renderDetail() {
  const session = state.selected ? state.sessions.get(state.selected) : undefined;
  if (!session) return;
  const live = session.liveState;
  const label = statusLabel(session);
  $('detail-agent').textContent = session.agentId;
  /** @type {HTMLAnchorElement} */ ($('detail-agent-page')).href = agentPageHref(session.agentId);
  $('detail-owner').textContent = session.owner ?? 'no instance now';
  const status = $('detail-status');
  status.textContent = label.text;
  status.className = `badge ${label.tone}`;
  const weak = $('detail-weak-key');
  weak.hidden = !session.weakApiKey;
  weak.title = WEAK_KEY_HINT;

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
