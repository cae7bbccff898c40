// LISTEN on PostgreSQL: one dedicated connection carries every channel this process listens on, and comes back after
// a drop. Notifications sent while it was down are lost, so each listener is told to resynchronize then.
import type pg from 'pg';

export type NotificationHandler = (payload: string) => void;

interface Subscription {
  handler: NotificationHandler;
  /** Called after the connection came back: what was notified meanwhile is lost, so read the state again. */
  resync: (() => void) | undefined;
}

/** Channel names are ours, never a caller's: a plain identifier, safe to quote. */
const CHANNEL = /^[a-z_][a-z0-9_]{0,62}$/;

export class PgListener {
  private readonly channels = new Map<string, Set<Subscription>>();
  private client: pg.Client | null = null;
  private connecting: Promise<pg.Client> | null = null;
  private retry: NodeJS.Timeout | undefined;
  private retries = 0;
  private closed = false;

  constructor(private readonly connect: () => pg.Client) {}

  /** Calls `handler` with every payload notified on `channel`; resolves once listening. Returns the unsubscribe. */
  async listen(channel: string, handler: NotificationHandler, resync?: () => void): Promise<() => Promise<void>> {
    if (!CHANNEL.test(channel)) throw new Error(`not a channel name: ${channel}`);
    const subscription: Subscription = { handler, resync };
    let subscriptions = this.channels.get(channel);
    const first = !subscriptions;
    if (!subscriptions) {
      subscriptions = new Set();
      this.channels.set(channel, subscriptions);
    }
    subscriptions.add(subscription);
    const client = await this.connected();
    if (first) await client.query(`LISTEN "${channel}"`);
    return async () => {
      subscriptions.delete(subscription);
      if (subscriptions.size > 0 || this.channels.get(channel) !== subscriptions) return;
      this.channels.delete(channel);
      await this.client?.query(`UNLISTEN "${channel}"`).catch(() => {});
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    const client = this.client ?? (await this.connecting?.catch(() => null));
    this.client = null;
    await client?.end().catch(() => {});
  }

  private connected(): Promise<pg.Client> {
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= this.open().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  private async open(): Promise<pg.Client> {
    const client = this.connect();
    client.on('notification', ({ channel, payload }) => {
      for (const { handler } of this.channels.get(channel) ?? []) handler(payload ?? '');
    });
    // A dropped connection: listen again on a new one, then have everyone read what they may have missed.
    const lost = () => {
      if (this.client !== client) return;
      this.client = null;
      client.end().catch(() => {});
      this.reconnectLater();
    };
    client.on('error', lost);
    client.on('end', lost);
    await client.connect();
    for (const channel of this.channels.keys()) await client.query(`LISTEN "${channel}"`);
    this.client = client;
    this.retries = 0;
    return client;
  }

  private reconnectLater(): void {
    if (this.closed || this.retry) return;
    const delay = Math.min(30_000, 500 * 2 ** this.retries);
    this.retries += 1;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      if (this.closed) return;
      this.connected().then(
        () => {
          for (const subscriptions of this.channels.values()) for (const { resync } of subscriptions) resync?.();
        },
        () => this.reconnectLater(),
      );
    }, delay);
    this.retry.unref();
  }
}
