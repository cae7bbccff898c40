// Coalesces calls made in the same event-loop turn into one batch call: one database round trip and one commit
// for many messages under load, and no added wait when traffic is light.

export interface BatcherOptions<T, R> {
  /** Handles a batch; returns one result per item, in order. */
  run(items: T[]): Promise<R[]>;
  maxBatch?: number;
}

export class Batcher<T, R> {
  private pending: Array<{ item: T; resolve: (result: R) => void; reject: (err: unknown) => void }> = [];
  private scheduled = false;

  constructor(private readonly options: BatcherOptions<T, R>) {}

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const max = this.options.maxBatch ?? 500;
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, max);
      this.options.run(batch.map((entry) => entry.item)).then(
        (results) => {
          for (const [i, entry] of batch.entries()) entry.resolve(results[i] as R);
        },
        (err: unknown) => {
          for (const entry of batch) entry.reject(err);
        },
      );
    }
  }
}
