// Group commit for the `sent` UPDATE: marks that arrive from any agent's dispatcher while one UPDATE is running are
// written together by the next, as one statement, so the database sees one commit per batch instead of per message.

export interface SentMark {
  id: string;
  waMessageId: string;
}

interface PendingMark extends SentMark {
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class SentWriter {
  private pending: PendingMark[] = [];
  private running: Promise<void> | undefined;

  constructor(private readonly write: (marks: SentMark[]) => Promise<void>) {}

  /** Resolves once the row's `sent` state is committed; rejects with the batch's error when the UPDATE failed. */
  mark(id: string, waMessageId: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ id, waMessageId, resolve, reject });
      this.running ??= this.run();
    });
  }

  /** Resolves when every mark handed in so far is written (or failed). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async run(): Promise<void> {
    // One tick's grace, so that the marks of sends finishing together share the first statement too.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0);
      try {
        await this.write(batch.map(({ id, waMessageId }) => ({ id, waMessageId })));
        for (const mark of batch) mark.resolve();
      } catch (err) {
        for (const mark of batch) mark.reject(err);
      }
    }
    this.running = undefined;
  }
}
