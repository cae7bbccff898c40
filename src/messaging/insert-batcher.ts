// Group commit for the outbox INSERT: requests that arrive while one INSERT is running (or in the same tick) are
// written together by the next, as one multi-row statement and one commit. Each request still gets its own result,
// and only once its row is committed.
import type { NewOutboxMessage, OutboxRecord, OutboxRepository } from './outbox.repository.js';

interface PendingInsert {
  message: NewOutboxMessage;
  resolve: (record: OutboxRecord | null) => void;
  reject: (err: unknown) => void;
}

export class InsertBatcher {
  private pending: PendingInsert[] = [];
  private running: Promise<void> | undefined;

  constructor(private readonly repository: Pick<OutboxRepository, 'insert' | 'insertMany'>) {}

  /** Like OutboxRepository.insert: the committed row, or null when the agent already used the idempotency key. */
  insert(message: NewOutboxMessage): Promise<OutboxRecord | null> {
    return new Promise((resolve, reject) => {
      this.pending.push({ message, resolve, reject });
      this.running ??= this.run();
    });
  }

  private async run(): Promise<void> {
    // One tick's grace, so that requests parsed in the same tick share the first statement too.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0);
      await this.write(batch);
    }
    this.running = undefined;
  }

  private async write(batch: PendingInsert[]): Promise<void> {
    try {
      const records = await this.repository.insertMany(batch.map((item) => item.message));
      for (const [index, item] of batch.entries()) item.resolve(records[index] ?? null);
      return;
    } catch (err) {
      const [only] = batch;
      if (batch.length === 1 && only) {
        only.reject(err);
        return;
      }
    }
    // One bad row must not fail the requests it happened to share a statement with: each is tried on its own.
    await Promise.all(
      batch.map(async (item) => {
        try {
          item.resolve(await this.repository.insert(item.message));
        } catch (err) {
          item.reject(err);
        }
      }),
    );
  }
}
