// Runs tasks strictly in order within one chat, different chats side by side up to a bound, with bounded memory.

/**
 * One unit of work. `releaseSlot` gives the concurrency slot back early while the chat stays locked: a task waiting
 * on something that is not this process's work (the outbox's rate limit) then no longer holds up other chats.
 */
export type ChatTask = (releaseSlot: () => void) => Promise<void>;

export interface ChatQueueOptions {
  /** Tasks running at once across all chats. */
  concurrency: number;
  /** Tasks waiting in one chat; a chat flooding faster than the AI answers is cut off here. */
  maxPendingPerChat: number;
  /** Tasks waiting across all chats, so memory stays bounded whatever the traffic. */
  maxPending: number;
}

interface Chat {
  tasks: ChatTask[];
  running: boolean;
}

export class ChatQueue {
  private readonly chats = new Map<string, Chat>();
  /** Chats with work and no task running, oldest first; a Set keeps insertion order and makes re-adding free. */
  private readonly ready = new Set<string>();
  /** Slots held: tasks running that have not released theirs. */
  private active = 0;
  /** Tasks running, whether or not they still hold a slot. */
  private running = 0;
  private waiting = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly options: ChatQueueOptions) {}

  /** Queues a task behind the chat's earlier ones; false when a bound is reached and the task was not taken. */
  push(chatKey: string, task: ChatTask): boolean {
    const chat = this.chats.get(chatKey) ?? { tasks: [], running: false };
    if (this.waiting >= this.options.maxPending || chat.tasks.length >= this.options.maxPendingPerChat) return false;
    chat.tasks.push(task);
    this.waiting += 1;
    this.chats.set(chatKey, chat);
    if (!chat.running) this.ready.add(chatKey);
    this.pump();
    return true;
  }

  /** Tasks queued or running. */
  get size(): number {
    return this.waiting + this.running;
  }

  /** Resolves when nothing is queued or running. */
  onIdle(): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    while (this.active < this.options.concurrency && this.ready.size > 0) {
      const key = this.ready.values().next().value as string;
      this.ready.delete(key);
      const chat = this.chats.get(key);
      const task = chat?.tasks.shift();
      if (!chat || !task) continue;
      this.waiting -= 1;
      this.active += 1;
      this.running += 1;
      chat.running = true;
      void this.run(key, chat, task);
    }
  }

  private async run(key: string, chat: Chat, task: ChatTask): Promise<void> {
    let holdsSlot = true;
    const releaseSlot = () => {
      if (!holdsSlot) return;
      holdsSlot = false;
      this.active -= 1;
      this.pump();
    };
    try {
      await task(releaseSlot);
    } catch {
      // Tasks handle their own failures; one that throws anyway must not stall its chat.
    }
    this.running -= 1;
    chat.running = false;
    // Back of the line, so one busy chat cannot starve the others.
    if (chat.tasks.length > 0) this.ready.add(key);
    else this.chats.delete(key);
    releaseSlot();
    this.pump();
    if (this.size === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }
}
