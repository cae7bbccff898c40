// Group commit: calls made in the same event-loop turn, or while earlier batches are still running, are handed to
// one batch call: one database round trip and one commit for many messages under load, and no added wait when
// traffic is light.

export interface BatcherOptions<T, R> {
  /** Handles a batch; returns one result per item, in order. */
  run(items: T[]): Promise<R[]>;
  maxBatch?: number;
  /**
   * Batches running at once. When that many are running, new items wait and go together in the next batch: fewer,
   * larger statements under load. With 1, batches also finish in the order they were formed.
   */
  maxInFlight?: number;
  /**
   * Least time between the starts of two batches, unless an urgent item waits (0: none). Items nobody waits for
   * (rows whose request is already answered) then go in fewer, larger statements, each with its fixed cost.
   */
  lingerMs?: number;
  /** Clock for the linger; tests pass a fake. */
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
}

interface Entry<T, R> {
  item: T;
  resolve: (result: R) => void;
  reject: (err: unknown) => void;
}

export class Batcher<T, R> {
  private pending: Array<Entry<T, R>> = [];
  /** A flush is due: at the next turn, or when the linger ends. */
  private scheduled: 'soon' | 'linger' | undefined;
  private urgent = false;
  private inFlight = 0;
  private lastStart = Number.NEGATIVE_INFINITY;
  private idleWaiters: Array<() => void> = [];
  private readonly maxBatch: number;
  private readonly maxInFlight: number;
  private readonly lingerMs: number;
  private readonly now: () => number;

  constructor(private readonly options: BatcherOptions<T, R>) {
    this.maxBatch = options.maxBatch ?? 500;
    this.maxInFlight = options.maxInFlight ?? Number.POSITIVE_INFINITY;
    this.lingerMs = options.lingerMs ?? 0;
    this.now = options.now ?? performance.now.bind(performance);
  }

  /** Adds an item to the next batch. An urgent item (someone waits for it) cuts the linger short. */
  add(item: T, urgent = true): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (urgent) this.hurry();
      else this.schedule();
    });
  }

  /** Someone now waits for what is pending: it goes at the next turn, or as soon as a running batch ends. */
  hurry(): void {
    this.urgent = true;
    this.schedule();
  }

  /** Items added and not yet handed to a batch. */
  get waiting(): number {
    return this.pending.length;
  }

  /** Resolves once every item added so far has been handed to a batch and every batch has finished. */
  idle(): Promise<void> {
    if (this.pending.length === 0 && this.inFlight === 0) return Promise.resolve();
    this.hurry(); // someone waits for all of it
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    if (this.pending.length === 0 || this.inFlight >= this.maxInFlight || this.scheduled === 'soon') return;
    const wait = this.urgent ? 0 : this.lastStart + this.lingerMs - this.now();
    if (wait <= 0) {
      this.scheduled = 'soon';
      setImmediate(() => this.flush());
    } else if (this.scheduled === undefined) {
      this.scheduled = 'linger';
      (this.options.setTimer ?? setTimeout)(() => {
        if (this.scheduled === 'linger') this.flush();
      }, wait);
    }
  }

  private flush(): void {
    this.scheduled = undefined;
    const urgent = this.urgent;
    while (this.pending.length > 0 && this.inFlight < this.maxInFlight) {
      const batch = this.pending.splice(0, this.maxBatch);
      this.inFlight += 1;
      this.lastStart = this.now();
      this.options
        .run(batch.map((entry) => entry.item))
        .then(
          (results) => {
            for (const [i, entry] of batch.entries()) entry.resolve(results[i] as R);
          },
          (err: unknown) => {
            for (const entry of batch) entry.reject(err);
          },
        )
        .finally(() => {
          this.inFlight -= 1;
          // What piled up meanwhile goes as one batch: now, or once the linger is over.
          if (this.pending.length > 0) {
            if (this.urgent || this.lingerMs === 0) this.flush();
            else this.schedule();
          } else if (this.inFlight === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
        });
    }
    // What did not fit in this flush keeps its urgency; the rest is on its way.
    this.urgent = urgent && this.pending.length > 0;
  }
}
