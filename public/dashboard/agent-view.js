// The agent page (#/agents/{agentId}): its recent chats and messages both ways with receipt ticks, its webhooks with
// their last deliveries and a Retry button, and a chart of the last hour, all read again every 15 s.

import { createActivityChart, summarize } from './activity-chart.js';
import { ApiError } from './api.js';
import { $, announce, formatNumber, formatTime, showMessage, statusLabel } from './sessions-view.js';

const REFRESH_MS = 15_000;
const CHATS_SHOWN = 20;
const MESSAGES_SHOWN = 50;
const DELIVERIES_SHOWN = 5;
/** After a retry, the delivery's outcome is read again this much later (the dispatcher attempts it at once). */
const AFTER_RETRY_MS = 1_500;

const enc = encodeURIComponent;

/** Builds an element with a class and text; text always goes in as textContent, never as HTML. */
function el(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

function timeElement(iso, format = (date) => date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })) {
  const element = document.createElement('time');
  if (!iso) {
    element.textContent = '—';
    return element;
  }
  element.dateTime = iso;
  element.textContent = format(new Date(iso));
  element.title = formatTime(iso);
  return element;
}

/**
 * The tick of a message: what its outbox state and WhatsApp's receipts say. Received messages and those sent from
 * the phone have none.
 * @returns {{ state: string, symbol: string, label: string, title: string } | null}
 */
export function tickOf(item) {
  if (item.direction !== 'out' || item.status === null) return null;
  const receipts = item.receipts ?? {};
  const at = (iso) => (iso ? ` ${formatTime(iso)}` : '');
  if (item.status === 'failed') {
    const why = item.error ?? 'the send failed';
    return { state: 'failed', symbol: '✗', label: `Failed: ${why}`, title: why };
  }
  if (receipts.errorAt) {
    const why = receipts.error ?? 'WhatsApp reported an error';
    return { state: 'failed', symbol: '✗', label: `Failed: ${why}`, title: why };
  }
  if (item.status === 'queued' || item.status === 'sending') {
    return { state: 'queued', symbol: '◷', label: 'Queued', title: item.error ? `Queued: ${item.error}` : 'Queued' };
  }
  if (receipts.played) return { state: 'read', symbol: '✓✓', label: 'Played', title: `Played${at(receipts.played)}` };
  if (receipts.read) return { state: 'read', symbol: '✓✓', label: 'Read', title: `Read${at(receipts.read)}` };
  if (receipts.delivered) {
    return { state: 'delivered', symbol: '✓✓', label: 'Delivered', title: `Delivered${at(receipts.delivered)}` };
  }
  return { state: 'sent', symbol: '✓', label: 'Sent', title: `Sent${at(receipts.server)}` };
}

function chatLabel(chat) {
  return chat.chatName ?? formatNumber(chat.chatId);
}

function messageText(item) {
  if (item.type === 'text') return item.text ?? '';
  const caption = item.caption ?? item.text;
  const name = item.media?.filename ? ` ${item.media.filename}` : '';
  return `[${item.type}${name}]${caption ? ` ${caption}` : ''}`;
}

/** A delivery is worth a retry once it has failed for good, or while a failed attempt waits for the next. */
function retryable(delivery) {
  if (delivery.status === 'failed') return true;
  return delivery.status === 'pending' && delivery.attempts > 0;
}

function deliveryStatus(delivery) {
  if (delivery.status === 'delivered') return { text: 'delivered', tone: 'ok' };
  if (delivery.status === 'failed') return { text: 'failed', tone: 'bad' };
  return delivery.attempts > 0 ? { text: 'retrying', tone: 'bad' } : { text: 'pending', tone: 'wait' };
}

function badge(text, tone) {
  return el('span', `badge ${tone}`, text);
}

const DELIVERY_COLUMNS = ['Event', 'Status', 'Attempts', 'Code', 'Last attempt', 'Action'];

function cell(label, ...content) {
  const td = el('td');
  td.dataset.label = label;
  const box = el('div');
  box.append(...content);
  td.append(box);
  return td;
}

/**
 * @param {{
 *   api: ReturnType<typeof import('./api.js').createApi>,
 *   guarded: (control: HTMLElement, resultId: string, action: () => Promise<any>) => Promise<any>,
 *   errorText: (err: unknown) => string,
 *   onUnauthorized: () => void,
 * }} options
 */
export function createAgentView({ api, guarded, errorText, onUnauthorized }) {
  const view = {
    /** @type {string | null} */
    agentId: null,
    /** @type {string | null} */
    chatId: null,
    /** @type {ReturnType<typeof createActivityChart> | null} */
    chart: null,
    /** @type {ReturnType<typeof setInterval> | undefined} */
    interval: undefined,
    /** @type {Promise<void> | undefined} */
    loading: undefined,
  };
  const base = () => `/agents/${enc(view.agentId ?? '')}`;

  /** Runs one read for a panel: its error shows in the panel; a refused key signs out. Stale answers are dropped. */
  async function panel(errorId, read) {
    const agentId = view.agentId;
    try {
      await read(() => view.agentId === agentId);
      showMessage(errorId, '');
    } catch (err) {
      if (view.agentId !== agentId) return;
      if (err instanceof ApiError && err.status === 401) onUnauthorized();
      else showMessage(errorId, errorText(err), 'error');
    }
  }

  // ---- header ----

  function renderSession(session) {
    if (session.agentId !== view.agentId) return;
    const label = statusLabel(session);
    const status = $('agent-status');
    status.textContent = label.text;
    status.className = `badge ${label.tone}`;
    $('agent-name').textContent = session.agentName ?? '';
    $('agent-number').textContent = session.liveState.me ? formatNumber(session.liveState.me) : 'no phone linked';
  }

  const loadHeader = () =>
    panel('agent-error', async (current) => {
      const { data } = await api.get(`/sessions/${enc(view.agentId ?? '')}`);
      if (current()) renderSession(data);
    });

  // ---- activity ----

  const loadActivity = () =>
    panel('activity-error', async (current) => {
      const { data } = await api.get(`${base()}/activity?minutes=60`);
      if (!current()) return;
      const container = $('activity-chart');
      view.chart ??= createActivityChart(container);
      view.chart.update(data.buckets);
      const total = data.buckets.reduce((sum, b) => sum + b.sent + b.received + b.failed, 0);
      container.dataset.buckets = String(data.buckets.length);
      container.dataset.total = String(total);
      $('activity-summary').textContent = summarize(data.buckets);
    });

  // ---- chats and messages ----

  function renderChats(chats) {
    const list = $('chat-list');
    const items = chats.map((chat) => {
      const button = el('button', 'chat-item');
      button.type = 'button';
      button.dataset.chat = chat.chatId;
      if (chat.chatId === view.chatId) button.setAttribute('aria-current', 'true');
      const arrow = chat.lastMessage.direction === 'out' ? '→ ' : '← ';
      const head = el('span', 'chat-head');
      head.append(el('span', 'chat-name', chatLabel(chat)), timeElement(chat.lastMessageAt));
      button.append(
        head,
        el('span', 'chat-preview', arrow + (chat.lastMessage.preview || `[${chat.lastMessage.type}]`)),
      );
      const li = el('li');
      li.append(button);
      return li;
    });
    list.replaceChildren(...items);
    $('chats-empty').hidden = chats.length > 0;
  }

  function renderMessages(chat, items) {
    $('messages-title').textContent = chat ? `Conversation with ${chatLabel(chat)}` : 'Choose a chat';
    const list = $('message-list');
    list.replaceChildren(
      ...items.map((item) => {
        const li = el('li', `msg ${item.direction}`);
        li.dataset.id = item.id;
        if (item.direction === 'in' && chat?.isGroup && item.from)
          li.append(el('p', 'msg-from', formatNumber(item.from)));
        li.append(el('p', 'msg-body', messageText(item)));
        const meta = el('p', 'msg-meta');
        meta.append(timeElement(item.timestamp));
        const tick = tickOf(item);
        if (tick) {
          const mark = el('span', 'tick', tick.symbol);
          mark.dataset.tick = tick.state;
          mark.title = tick.title;
          mark.setAttribute('role', 'img');
          mark.setAttribute('aria-label', tick.label);
          meta.append(mark);
          li.dataset.tick = tick.state;
        }
        li.append(meta);
        return li;
      }),
    );
  }

  /** @type {Map<string, any>} chatId → the chat's summary, for the messages' heading */
  const chats = new Map();

  const loadMessages = () =>
    panel('chats-error', async (current) => {
      const chatId = view.chatId;
      if (!chatId) {
        renderMessages(null, []);
        return;
      }
      const { data } = await api.get(`${base()}/chats/${enc(chatId)}/messages?limit=${MESSAGES_SHOWN}`);
      if (current() && view.chatId === chatId) renderMessages(chats.get(chatId) ?? null, data.items);
    });

  const loadChats = () =>
    panel('chats-error', async (current) => {
      const { data } = await api.get(`${base()}/chats?limit=${CHATS_SHOWN}`);
      if (!current()) return;
      chats.clear();
      for (const chat of data.items) chats.set(chat.chatId, chat);
      if (!view.chatId || !chats.has(view.chatId)) view.chatId = data.items[0]?.chatId ?? null;
      renderChats(data.items);
    }).then(loadMessages);

  function selectChat(chatId) {
    view.chatId = chatId;
    for (const button of $('chat-list').querySelectorAll('button[data-chat]')) {
      if (button instanceof HTMLElement && button.dataset.chat === chatId) button.setAttribute('aria-current', 'true');
      else button.removeAttribute('aria-current');
    }
    return loadMessages();
  }

  // ---- webhooks ----

  function renderDelivery(webhook, delivery) {
    const row = el('tr');
    row.dataset.delivery = delivery.id;
    row.dataset.status = delivery.status;
    const status = deliveryStatus(delivery);
    const code = delivery.lastStatusCode !== null ? `HTTP ${delivery.lastStatusCode}` : (delivery.lastError ?? '—');
    const codeBox = el('span', 'delivery-code', code);
    if (delivery.lastError) codeBox.title = delivery.lastError;
    const action = [];
    if (retryable(delivery)) {
      const retry = el('button', 'secondary small', 'Retry');
      retry.type = 'button';
      retry.dataset.retry = delivery.id;
      retry.dataset.webhook = webhook.id;
      retry.append(el('span', 'visually-hidden', ` ${delivery.type} delivery`));
      action.push(retry);
    }
    row.append(
      cell(DELIVERY_COLUMNS[0], el('span', 'event-type', delivery.type)),
      cell(DELIVERY_COLUMNS[1], badge(status.text, status.tone)),
      cell(DELIVERY_COLUMNS[2], String(delivery.attempts)),
      cell(DELIVERY_COLUMNS[3], codeBox),
      cell(
        DELIVERY_COLUMNS[4],
        timeElement(delivery.lastAttemptAt ?? delivery.createdAt, (d) => d.toLocaleTimeString()),
      ),
      cell(DELIVERY_COLUMNS[5], ...(action.length > 0 ? action : ['—'])),
    );
    return row;
  }

  function renderWebhook(webhook, deliveries) {
    const article = el('article', 'webhook');
    article.dataset.webhook = webhook.id;
    const titleId = `webhook-${webhook.id}`;
    article.setAttribute('aria-labelledby', titleId);
    const title = el('h3', 'webhook-url', webhook.url);
    title.id = titleId;
    const facts = el('p', 'webhook-facts');
    facts.append(
      webhook.enabled
        ? badge('enabled', 'ok')
        : badge(webhook.disabledAt ? 'disabled after failing' : 'disabled', 'bad'),
      el('span', 'hint', webhook.events ? webhook.events.join(', ') : 'all events'),
    );
    if (webhook.description) facts.append(el('span', 'hint', webhook.description));
    article.append(title, facts);
    if (deliveries.length === 0) {
      article.append(el('p', 'hint', 'No deliveries yet.'));
      return article;
    }
    const table = el('table', 'deliveries');
    table.append(el('caption', 'visually-hidden', `The last ${deliveries.length} deliveries to ${webhook.url}`));
    const head = el('thead');
    const headRow = el('tr');
    for (const label of DELIVERY_COLUMNS) {
      const th = el('th', '', label === 'Action' ? '' : label);
      th.scope = 'col';
      if (label === 'Action') th.append(el('span', 'visually-hidden', 'Action'));
      headRow.append(th);
    }
    head.append(headRow);
    const body = el('tbody');
    body.append(...deliveries.map((delivery) => renderDelivery(webhook, delivery)));
    table.append(head, body);
    const wrap = el('div', 'table-wrap');
    wrap.append(table);
    article.append(wrap);
    return article;
  }

  const loadWebhooks = () =>
    panel('webhooks-error', async (current) => {
      const { data } = await api.get(`${base()}/webhooks`);
      const withDeliveries = await Promise.all(
        data.items.map(async (webhook) => {
          const page = await api.get(`${base()}/webhooks/${enc(webhook.id)}/deliveries?limit=${DELIVERIES_SHOWN}`);
          return [webhook, page.data.items];
        }),
      );
      if (!current()) return;
      // Keep focus on a Retry button that is redrawn (a refresh would otherwise drop it to the page).
      const focused = document.activeElement instanceof HTMLElement ? document.activeElement.dataset.retry : undefined;
      $('webhook-list').replaceChildren(...withDeliveries.map(([webhook, items]) => renderWebhook(webhook, items)));
      $('webhooks-empty').hidden = data.items.length > 0;
      if (focused) {
        const again = $('webhook-list').querySelector(`button[data-retry="${CSS.escape(focused)}"]`);
        if (again instanceof HTMLElement) again.focus();
      }
    });

  async function onRetry(button) {
    const { retry, webhook } = button.dataset;
    if (!retry || !webhook) return;
    const result = await guarded(button, 'webhooks-result', () =>
      api.post(`${base()}/webhooks/${enc(webhook)}/deliveries/${enc(retry)}/retry`),
    );
    if (!result) return;
    showMessage('webhooks-result', `Delivery of ${result.data.type} is being attempted again.`, 'success');
    await loadWebhooks();
    setTimeout(() => {
      if (view.agentId) void loadWebhooks();
    }, AFTER_RETRY_MS);
  }

  // ---- the whole page ----

  function refresh() {
    view.loading ??= Promise.all([loadHeader(), loadActivity(), loadChats(), loadWebhooks()])
      .then(() => {
        $('agent-updated').textContent = `Updated ${new Date().toLocaleTimeString()}`;
      })
      .finally(() => {
        view.loading = undefined;
      });
    return view.loading;
  }

  $('chat-list').addEventListener('click', (event) => {
    const button = event.target instanceof Element ? event.target.closest('button[data-chat]') : null;
    if (button instanceof HTMLElement && button.dataset.chat) void selectChat(button.dataset.chat);
  });
  $('webhook-list').addEventListener('click', (event) => {
    const button = event.target instanceof Element ? event.target.closest('button[data-retry]') : null;
    if (button instanceof HTMLElement) void onRetry(button);
  });
  $('agent-refresh').addEventListener('click', () =>
    guarded($('agent-refresh'), 'agent-error', refresh).then(() => announce('Agent page refreshed')),
  );

  return {
    get agentId() {
      return view.agentId;
    },
    renderSession,
    /** Shows the page of `agentId` (the other views are hidden by the caller) and keeps it fresh. */
    show(agentId) {
      const changed = view.agentId !== agentId;
      view.agentId = agentId;
      $('agent-view').hidden = false;
      if (changed) {
        view.chatId = null;
        chats.clear();
        $('agent-id').textContent = agentId;
        $('agent-crumb').textContent = agentId;
        document.title = `${agentId} · Dashboard · WhatsApp Multi-Tenant API`;
        for (const id of ['agent-status', 'agent-name', 'agent-number', 'agent-updated']) $(id).textContent = '';
        for (const id of ['agent-error', 'activity-error', 'chats-error', 'webhooks-error', 'webhooks-result']) {
          showMessage(id, '');
        }
        $('activity-summary').textContent = 'Loading…';
        $('chat-list').replaceChildren();
        $('message-list').replaceChildren();
        $('webhook-list').replaceChildren();
        $('chats-empty').hidden = true;
        $('webhooks-empty').hidden = true;
        renderMessages(null, []);
      }
      clearInterval(view.interval);
      view.interval = setInterval(() => {
        if (document.visibilityState !== 'hidden') void refresh();
      }, REFRESH_MS);
      $('agent-title').focus();
      return refresh();
    },
    /** Leaves the page; true when it was showing. */
    hide() {
      const was = view.agentId !== null;
      clearInterval(view.interval);
      view.interval = undefined;
      view.agentId = null;
      view.chart?.destroy();
      view.chart = null;
      delete $('activity-chart').dataset.total;
      $('agent-view').hidden = true;
      document.title = 'Dashboard · WhatsApp Multi-Tenant API';
      return was;
    },
  };
}
