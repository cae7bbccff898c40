// Reads the Server-Sent Events stream with fetch(), so the key travels in a header and never in a URL.

/**
 * Splits complete SSE messages off the front of a buffer.
 * @param {string} buffer
 * @returns {{ messages: { event: string, data: string }[], rest: string }}
 */
export function parseEvents(buffer) {
  const messages = [];
  const normalized = buffer.replace(/\r\n?/g, '\n');
  const blocks = normalized.split('\n\n');
  const rest = blocks.pop() ?? '';
  for (const block of blocks) {
    let event = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length > 0) messages.push({ event, data: data.join('\n') });
  }
  return { messages, rest };
}

/** Exponential backoff with jitter: 1 s, 2 s, 4 s … up to 30 s. */
export function backoffDelay(attempt) {
  const ceiling = Math.min(30_000, 1_000 * 2 ** attempt);
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

/**
 * Keeps a stream open until stop() is called: reconnects with backoff when it drops, and treats a silent
 * connection (no heartbeat for a while) as dropped.
 * @param {{
 *   url: string,
 *   getKey: () => string | null,
 *   onEvent: (event: string, data: unknown) => void,
 *   onState: (state: 'connecting' | 'live' | 'reconnecting' | 'unauthorized', detail?: { delayMs?: number, status?: number }) => void,
 * }} options
 */
export function openEventStream({ url, getKey, onEvent, onState }) {
  let stopped = false;
  let controller = new AbortController();
  let wake = () => {};
  /** Whether the current connection got as far as `hello`; a drop after that starts the backoff afresh. */
  let reachedLive = false;

  const sleep = (ms) =>
    new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  async function readOnce() {
    controller = new AbortController();
    const response = await fetch(url, {
      headers: { authorization: `Bearer ${getKey() ?? ''}`, accept: 'text/event-stream' },
      cache: 'no-store',
      signal: controller.signal,
    });
    if (response.status === 401 || response.status === 403) return response.status;
    if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let silenceLimitMs = 45_000;
    let watchdog = setTimeout(() => controller.abort(), silenceLimitMs);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return 0;
        clearTimeout(watchdog);
        watchdog = setTimeout(() => controller.abort(), silenceLimitMs);
        const parsed = parseEvents(buffer + value);
        buffer = parsed.rest;
        for (const message of parsed.messages) {
          const data = JSON.parse(message.data);
          if (message.event === 'hello') {
            silenceLimitMs = Math.max(5_000, (data?.heartbeatMs ?? 15_000) * 3);
            reachedLive = true;
            onState('live');
          }
          onEvent(message.event, data);
        }
      }
    } finally {
      clearTimeout(watchdog);
    }
  }

  (async () => {
    let attempt = 0;
    while (!stopped) {
      onState('connecting');
      reachedLive = false;
      try {
        const status = await readOnce();
        if (status === 401 || status === 403) {
          onState('unauthorized', { status });
          return;
        }
      } catch {
        // A network error, an aborted silent stream or a 5xx: try again after a pause.
      }
      if (stopped) return;
      attempt = reachedLive ? 0 : attempt + 1;
      const delayMs = backoffDelay(attempt);
      onState('reconnecting', { delayMs });
      await sleep(delayMs);
    }
  })();

  return {
    stop() {
      stopped = true;
      controller.abort();
      wake();
    },
  };
}
