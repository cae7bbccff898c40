// Runs tasks strictly in order within one chat; the chats of one agent side by side up to the agent's limit; agents
// side by side up to the process's cap, taken in turn when it is reached; with bounded memory per chat, per agent
// and in all.

/**
 * One unit of work. `releaseSlot` gives the concurrency slot back early while the chat stays locked: a task waiting
 * on something that is not this process's work (the outbox's rate limit) then no longer holds up other chats.
 */
export type ChatTask = (releaseSlot: () => void) => Promise<void>;

export interface ChatQueueOptions {
  /** Tasks of one agent holding a slot at once (`AI_CONCURRENCY_PER_AGENT`). */
  perAgentConcurrency: number;
  /** Tasks holding a slot at once across all agents (`AI_CONCURRENCY_MAX`). */
  maxConcurrency: number;
  /** Tasks waiting in one chat; a chat flooding faster than the AI answers is cut off here. */
  maxPendingPerChat: number;
  /** Tasks waiting across one agent's chats, so a flooded agent drops its own excess and no one else's. */
  maxPendingPerAgent: number;
  /** Tasks waiting across all agents, so memory stays bounded whatever the traffic. */
  maxPending: number;
}

/** Which bound refused a task. */
export type QueueLimit = 'chat' | 'agent' | 'process';

interface Chat {
  tasks: ChatTask[];
  running: boolean;
}

interface AgentWork {
  chats: Map<string, Chat>;
  /** Chats with work and no task running, oldest first; a Set keeps insertion order and makes re-adding free. */
  ready: Set<string>;
  /** Slots this agent's tasks hold. */
  active: number;
  waiting: number;
}

export class ChatQueue {
  private readonly agents = new Map<string, AgentWork>();
  /** Agents with a ready chat and a slot of their own free, in turn: the next free process slot goes to the first. */
  private readonly turn = new Set<string>();
  /** Slots held: tasks running that have not released theirs. */
  private active = 0;
  /** Tasks running, whether or not they still hold a slot. */
  private running = 0;
  private waiting = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly options: ChatQueueOptions) {}

  /** Queues a task behind the chat's earlier ones; returns the bound that refused it, or null when it was taken. */
  push(agentId: string, chatJid: string, task: ChatTask): QueueLimit | null {
    const { maxPending, maxPendingPerAgent, maxPendingPerChat } = this.options;
    if (this.waiting >= maxPending) return 'process';
    let agent = this.agents.get(agentId);
    if (agent && agent.waiting >= maxPendingPerAgent) return 'agent';
    let chat = agent?.chats.get(chatJid);
    if (chat && chat.tasks.length >= maxPendingPerChat) return 'chat';
    if (!agent) {
      agent = { chats: new Map(), ready: new Set(), active: 0, waiting: 0 };
      this.agents.set(agentId, agent);
    }
    if (!chat) {
      chat = { tasks: [], running: false };
      agent.chats.set(chatJid, chat);
    }
    chat.tasks.push(task);
    agent.waiting += 1;
    this.waiting += 1;
    if (!chat.running) agent.ready.add(chatJid);
    this.offer(agentId, agent);
    this.pump();
    return null;
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

  /** Puts the agent in line for a slot when it has a chat ready and a slot of its own free. */
  private offer(agentId: string, agent: AgentWork): void {
    if (agent.ready.size > 0 && agent.active < this.options.perAgentConcurrency) this.turn.add(agentId);
  }

  private pump(): void {
    while (this.active < this.options.maxConcurrency && this.turn.size > 0) {
      const agentId = this.turn.values().next().value as string;
      this.turn.delete(agentId);
      const agent = this.agents.get(agentId);
      if (!agent) continue;
      const chatJid = agent.ready.values().next().value as string;
      agent.ready.delete(chatJid);
      const chat = agent.chats.get(chatJid);
      const task = chat?.tasks.shift();
      if (chat && task) {
        agent.waiting -= 1;
        this.waiting -= 1;
        agent.active += 1;
        this.active += 1;
        this.running += 1;
        chat.running = true;
        void this.run(agentId, agent, chatJid, chat, task);
      }
      // Back of the line, so that when the process cap binds, every agent with work gets the next slots in turn.
      this.offer(agentId, agent);
    }
  }

  private async run(agentId: string, agent: AgentWork, chatJid: string, chat: Chat, task: ChatTask): Promise<void> {
    let holdsSlot = true;
    const giveBack = () => {
      if (!holdsSlot) return false;
      holdsSlot = false;
      agent.active -= 1;
      this.active -= 1;
      return true;
    };
    const releaseSlot = () => {
      if (!giveBack()) return;
      this.offer(agentId, agent);
      this.pump();
    };
    try {
      await task(releaseSlot);
    } catch {
      // Tasks handle their own failures; one that throws anyway must not stall its chat.
    }
    giveBack();
    this.running -= 1;
    chat.running = false;
    // Back of the agent's line, so one busy chat cannot starve the agent's others.
    if (chat.tasks.length > 0) agent.ready.add(chatJid);
    else agent.chats.delete(chatJid);
    if (agent.chats.size === 0) this.agents.delete(agentId);
    else this.offer(agentId, agent);
    this.pump();
    if (this.size === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }
}
