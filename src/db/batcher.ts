// Group commit: calls made in the same event-loop turn, or while earlier batches are still running, are handed to
// one batch call: one database round trip and one commit for many messages under load, and no added wait when
// traffic is light (a lone call goes at the next turn).

export interface BatcherOptions<T, R> {
  /** Handles a batch; returns one result per item, in order. */
  run(items: T[]): Promise<R[]>;
  maxBatch?: number;
  /**
   * Batches running at once. When that many are running, new items wait and go together in the next batch: fewer,
   * larger statements under load. With 1, batches also finish in the order they were formed.
   */
  maxInFlight?: number;
}

interface Entry<T, R> {
  item: T;
  resolve: (result: R) => void;
  reject: (err: unknown) => void;
}

export class Batcher<T, R> {
  private pending: Array<Entry<T, R>> = [];
  private scheduled = false;
  private inFlight = 0;
  private idleWaiters: Array<() => void> = [];
  private readonly maxBatch: number;
  private readonly maxInFlight: number;

  constructor(private readonly options: BatcherOptions<T, R>) {
    this.maxBatch = options.maxBatch ?? 500;
    this.maxInFlight = options.maxInFlight ?? Number.POSITIVE_INFINITY;
  }

  /** Adds an item to the next batch; resolves with its result, or rejects with its batch's error. */
  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /** Resolves once every item added so far has been handed to a batch and every batch has finished. */
  idle(): Promise<void> {
    if (this.pending.length === 0 && this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.maxInFlight) return;
    this.scheduled = true;
    // The rest of this turn's calls join the batch.
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    while (this.pending.length > 0 && this.inFlight < this.maxInFlight) {
      const batch = this.pending.splice(0, this.maxBatch);
      this.inFlight += 1;
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
          // What piled up meanwhile goes at once, as one batch.
          if (this.pending.length > 0) this.flush();
          else if (this.inFlight === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
        });
    }
  }
}
