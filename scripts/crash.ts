// Crash suite of the built service: `node dist/main.js` under send load is killed with SIGKILL several times and
// restarted on the same PostgreSQL database and DATA_DIR; afterwards every accepted message must be a row, sent at
// least once, and no Idempotency-Key may have led to a second message.
//
// Usage (after `npm run build`; PostgreSQL required, the run fails at once without it):
//
//   CRASH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run crash     # or TEST_DATABASE_URL
//
// What it does. It creates a database `wamt_crash_<random>` on that server and a temporary DATA_DIR, boots the
// service (sandbox engine, a generated admin key, a free port on 127.0.0.1, rate limits out of the way), creates
// 3 agents and plays the phone scanning each. Eight senders then send texts, each with a unique text: 60 % plain (one
// try; a lost answer is "unknown"), 40 % with an Idempotency-Key, retried with the same key and body after a
// connection error, a timeout, 409 SESSION_NOT_READY, 429 or a 5xx, as a real client would. Of the keyed ones, some
// go twice at once (a double submit) and some once more after their answer (a client that lost it). Every answer is
// recorded: status, error code, messageId, waMessageId. Five times, after 1.5 to 4 s of load (and at least 40
// answers), it reads each agent's sandbox sent log (GET /sandbox/agents/{agentId}/sent) and at once SIGKILLs the
// process, with requests in flight. Once every connection of the dead process has left the server
// (pg_stat_activity), it reads the whole outbox table: the state the next process starts from. It restarts the
// service on the same database and DATA_DIR, on a new port, waits for /health/ready and for every agent to be
// ready again (GET /sessions/{agentId}: they resume from the sandbox logins kept in DATA_DIR), and the load goes
// on; keyed requests whose answer was lost are retried there. After the last restart and 2 s more of load the
// senders stop, the script waits for no row to be `queued`, reads the last process's sent logs, stops it with
// SIGTERM (exit code 0 expected) and reads the table a last time.
//
// What it checks (any violation fails the run, with examples):
//   - every 200/202 answer names a row holding its text and agent; a row exists only for a text that was sent, one
//     row per text and one per (agent, Idempotency-Key); every answer for one key carries the same messageId;
//   - at the end every row is `sent` with a wa_message_id; the only rows allowed to be `failed` are those the
//     service gave up on with "not sent: …" after a 503 (the documented outage path), never an accepted one;
//   - no answer other than 200, 202, 409 SESSION_NOT_READY, 429, 503: in particular no other 5xx, and no 409
//     IDEMPOTENCY_KEY_REUSED for a retry; a plain request refused with 409 or 429 left no row; a 503 was never sent,
//     except when its process died before the row's "failed" mark was written (the row was `queued` at that kill);
//   - a 200's waMessageId is its row's wa_message_id, or else the row was sent again by a later process, and it was
//     still `queued` in the table when the answering process died (at least once, not a second send of a message
//     already recorded sent): counted as "resent after a crash";
//   - per process and agent, a sent log never holds one text twice; every entry of a sent log is a row's text, to
//     that row's recipient; an entry whose id is not its row's final wa_message_id is a send the row's next process
//     repeated, allowed only if the row was `queued` when that process died;
//   - a row that was `sent` (or `failed`) in the table when a process died never changes again and never appears
//     in a later process's sent log (a committed outcome is final);
//   - every wa_message_id of the table was issued by the sandbox: for the last process, found in its complete log;
//     for a killed one, found in the log read before its kill whenever its counter is below that log's last one.
//
// What it does not prove. The sandbox's sent log lives in the process's memory and dies with it: what a killed
// process sent between the last read of its log and the SIGKILL (a few milliseconds of sends) is seen only through
// the table and through 200 answers. A second send of one row in that window, or a send without a row, would go
// unseen; such rows are counted as "sent by a killed process after its log was read" (the table's wa_message_id
// says the engine returned an id for them). The sandbox records a send before it returns, so the window in which
// WhatsApp has a message the service does not know it sent is nil here; with a real engine it is not. It covers
// texts only (not images, AI replies or developer reports), kills of the service only (not of PostgreSQL, whose own
// durability is assumed), and the kill moments it happened to hit: a pass is evidence, not proof.
//
// Every loop and wait is bounded (the whole run gives up after 175 s); all traffic is on 127.0.0.1; the service is
// always killed and the temporary directory and the database always removed, also on failure or Ctrl-C. One line
// per phase, a summary, then "crash: ok" or "crash: FAILED: …" and exit code 1.
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import type pg from 'pg';
import {
  api,
  bootService,
  check,
  createScratchDatabase,
  errorText,
  MAIN,
  pgClient,
  ScriptError,
  ScriptRun,
  type Service,
  type ServiceConfig,
  type SessionStatus,
  seconds,
  sleep,
  stopService,
  waitSessionReady,
} from './service-process.js';

const KILLS = 5;
const AGENT_COUNT = 3;
const SENDERS = 8;
const KEYED_SHARE = 0.4;
/** Of the keyed messages: sent twice at once on the first try (a client's double submit). */
const TWIN_SHARE = 0.1;
/** Of the keyed messages answered 200/202: sent once more with the same key (a client that lost the answer). */
const REPLAY_SHARE = 0.15;
const THINK_MS = { min: 2, max: 12 };
/** Load on each process before its kill, and at least this many answers from it. */
const LOAD_MS = { min: 1_500, max: 4_000 };
const MIN_ANSWERS_PER_PROCESS = 40;
const LOAD_WAIT_LIMIT_MS = 20_000;
const FINAL_LOAD_MS = 2_000;
const MAX_REQUESTS = 20_000;
const KEY_ATTEMPTS = 25;
const SEND_TIMEOUT_MS = 15_000;
/** Longest a sender waits for the service to be back. */
const GATE_TIMEOUT_MS = 90_000;
const KILL_TIMEOUT_MS = 5_000;
const QUIESCE_TIMEOUT_MS = 15_000;
const SESSION_READY_TIMEOUT_MS = 30_000;
const SENDERS_STOP_TIMEOUT_MS = 60_000;
const SETTLE_TIMEOUT_MS = 30_000;
const POLL_MS = 50;
/** A backstop over every step: the run gives up, cleans up and fails after this long whatever happens. */
const OVERALL_TIMEOUT_MS = 175_000;
const EXAMPLES = 5;

const SERVICE_ENV = {
  // The load must not hit the per-agent rate limit: what is measured is durability, not throttling.
  RATE_LIMIT_PER_MINUTE: '6000000',
  RATE_LIMIT_BURST: '100000',
};

interface Agent {
  agentId: string;
  key: string;
}

interface Message {
  agentId: string;
  to: string;
  text: string;
  key: string | null;
  tries: Attempt[];
}

/** One HTTP request of a message; `status` null once done means no answer came (connection error, timeout). */
interface Attempt {
  message: Message;
  /** The process it was sent to (1 for the first). */
  generation: number;
  /** A deliberate repeat of a key already answered. */
  replay: boolean;
  done: boolean;
  status: number | null;
  code?: string | undefined;
  state?: string | undefined;
  messageId?: string | undefined;
  waMessageId?: string | null | undefined;
  error?: string | undefined;
}

interface SentEntry {
  messageId: string;
  to: string;
  kind: string;
  text?: string;
}

interface Row {
  id: string;
  agentId: string;
  status: string;
  waMessageId: string | null;
  key: string | null;
  text: string | null;
  toJid: string;
  error: string | null;
}

interface Generation {
  index: number;
  service: Service;
  startedAt: number;
}

/** Each agent's sent log as read from one process. */
type Logs = Map<string, SentEntry[]>;

const run = new ScriptRun('crash');
const RUN_TAG = randomBytes(3).toString('hex');
const agents: Agent[] = [];
const messages: Message[] = [];
const attempts: Attempt[] = [];
let current: Generation | undefined;
/** The service is up, its agents ready: senders go; while false they wait. */
let up = false;
let stopLoad = false;

function between({ min, max }: { min: number; max: number }): number {
  return min + Math.floor(Math.random() * (max - min + 1));
}

function pick<T>(items: readonly T[], index: number): T {
  const item = items[index % items.length];
  if (item === undefined) throw new ScriptError('nothing to pick from');
  return item;
}

// ------------------------------------------------------------------------------------------------------------- load

/** Waits until the service is up; false when it did not come back in time. */
async function waitUp(): Promise<boolean> {
  const deadline = Date.now() + GATE_TIMEOUT_MS;
  while (!up) {
    if (Date.now() > deadline) return false;
    await sleep(POLL_MS / 2);
  }
  return true;
}

async function send(agent: Agent, message: Message, replay: boolean): Promise<Attempt> {
  const generation = current;
  check(generation, 'no service');
  const attempt: Attempt = { message, generation: generation.index, replay, done: false, status: null };
  attempts.push(attempt);
  message.tries.push(attempt);
  const headers: Record<string, string> = {
    authorization: `Bearer ${agent.key}`,
    'content-type': 'application/json',
  };
  if (message.key) headers['idempotency-key'] = message.key;
  try {
    const res = await fetch(`${generation.service.base}/agents/${agent.agentId}/messages`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ to: message.to, message: message.text }),
      signal: AbortSignal.timeout(SEND_TIMEOUT_MS),
    });
    const text = await res.text();
    let body: {
      data?: { messageId?: string; waMessageId?: string | null; status?: string };
      error?: { code?: string };
    } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      attempt.error = `not JSON: ${text.slice(0, 200)}`;
    }
    attempt.status = res.status;
    attempt.code = body.error?.code;
    attempt.state = body.data?.status;
    attempt.messageId = body.data?.messageId;
    attempt.waMessageId = body.data?.waMessageId;
  } catch (err) {
    attempt.error = errorText(err);
  }
  attempt.done = true;
  return attempt;
}

const accepted = (a: Attempt) => a.status === 200 || a.status === 202;
/** What a client retries with the same key: no answer, 409 SESSION_NOT_READY, 429, 5xx. */
const retryable = (a: Attempt) =>
  a.status === null || a.status === 429 || a.status >= 500 || (a.status === 409 && a.code === 'SESSION_NOT_READY');

async function sendKeyed(agent: Agent, message: Message): Promise<void> {
  for (let n = 0; n < KEY_ATTEMPTS; n++) {
    if (n > 0 && !(await waitUp())) return;
    const twin = n === 0 && Math.random() < TWIN_SHARE;
    const results = await Promise.all(
      twin ? [send(agent, message, false), send(agent, message, false)] : [send(agent, message, false)],
    );
    if (results.some(accepted)) {
      if (Math.random() < REPLAY_SHARE && (await waitUp())) await send(agent, message, true);
      return;
    }
    if (!results.every(retryable)) return; // an answer no client retries: the checks report it
    // Lost answers wait in waitUp() for the next process; refusals of a live one get a short pause.
    await sleep(results.some((a) => a.status !== null) ? 500 : 100);
  }
}

async function sender(index: number): Promise<void> {
  for (let n = 0; !stopLoad && attempts.length < MAX_REQUESTS; n++) {
    if (!(await waitUp())) return;
    const agent = pick(agents, index + n);
    const keyed = Math.random() < KEYED_SHARE;
    const message: Message = {
      agentId: agent.agentId,
      to: `62812345${String(6700 + index)}`,
      text: `crash ${RUN_TAG} s${index} m${n}${keyed ? ' keyed' : ''}`,
      key: keyed ? `crash-${RUN_TAG}-${index}-${n}` : null,
      tries: [],
    };
    messages.push(message);
    if (keyed) await sendKeyed(agent, message);
    else await send(agent, message, false);
    await sleep(between(THINK_MS));
  }
}

/** Lets the load run on the current process for `ms` and until it answered `MIN_ANSWERS_PER_PROCESS` requests. */
async function loadFor(ms: number): Promise<number> {
  const generation = current;
  check(generation, 'no service');
  const answered = () => attempts.filter((a) => a.generation === generation.index && a.status !== null).length;
  const started = Date.now();
  while (Date.now() - started < ms || answered() < MIN_ANSWERS_PER_PROCESS) {
    check(
      Date.now() - started < LOAD_WAIT_LIMIT_MS,
      `only ${answered()} answers from process ${generation.index} in ${seconds(LOAD_WAIT_LIMIT_MS)}: no load`,
    );
    check(generation.service.exit() === null, `process ${generation.index} died by itself`);
    await sleep(POLL_MS);
  }
  return answered();
}

// --------------------------------------------------------------------------------------------------------- service

async function readLogs(generation: Generation, adminKey: string): Promise<{ logs: Logs; problems: string[] }> {
  const logs: Logs = new Map();
  const problems: string[] = [];
  await Promise.all(
    agents.map(async ({ agentId }) => {
      try {
        const path = `/sandbox/agents/${agentId}/sent`;
        logs.set(agentId, await api<SentEntry[]>(generation.service.base, 'GET', path, adminKey));
      } catch (err) {
        problems.push(`${agentId}: ${errorText(err)}`);
      }
    }),
  );
  return { logs, problems };
}

async function startGeneration(index: number, config: ServiceConfig, usedPorts: Set<number>): Promise<Generation> {
  const service = await bootService(run, { ...config, avoidPorts: usedPorts });
  usedPorts.add(service.port);
  const generation = { index, service, startedAt: Date.now() };
  current = generation;
  return generation;
}

async function agentsReady(generation: Generation, adminKey: string): Promise<number> {
  let polls = 0;
  for (const { agentId } of agents) {
    polls += (await waitSessionReady(generation.service.base, adminKey, agentId, SESSION_READY_TIMEOUT_MS)).polls;
  }
  return polls;
}

/** Waits until no connection of the service is left on the server: every write it sent has landed or never will. */
async function quiesce(db: pg.Client): Promise<number> {
  const started = Date.now();
  for (;;) {
    const { rows } = await db.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
    );
    if (Number(rows[0]?.n) === 0) return Date.now() - started;
    check(Date.now() - started < QUIESCE_TIMEOUT_MS, `the killed process's connections stayed on the server`);
    await sleep(POLL_MS);
  }
}

async function readRows(db: pg.Client): Promise<Map<string, Row>> {
  const { rows } = await db.query(
    `SELECT id, agent_id, status, wa_message_id, idempotency_key, payload->>'text' AS text, to_jid, error
     FROM outbox_messages`,
  );
  return new Map(
    rows.map((r) => [
      String(r.id),
      {
        id: String(r.id),
        agentId: String(r.agent_id),
        status: String(r.status),
        waMessageId: r.wa_message_id == null ? null : String(r.wa_message_id),
        key: r.idempotency_key == null ? null : String(r.idempotency_key),
        text: r.text == null ? null : String(r.text),
        toJid: String(r.to_jid),
        error: r.error == null ? null : String(r.error),
      },
    ]),
  );
}

function countBy<T>(items: Iterable<T>, label: (item: T) => string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(label(item), (counts.get(label(item)) ?? 0) + 1);
  return counts;
}

function formatCounts(counts: Map<string, number>): string {
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([label, n]) => `${label}: ${n}`)
    .join(', ');
}

// ---------------------------------------------------------------------------------------------------------- checks

interface Observations {
  messages: readonly Message[];
  attempts: readonly Attempt[];
  /** Each process's sent logs: read just before its kill, and for the last one before its SIGTERM (complete). */
  logs: Map<number, Logs>;
  /** The table as each killed process left it, by the process's number. */
  atKill: Map<number, Map<string, Row>>;
  finalRows: Map<string, Row>;
  lastGeneration: number;
}

class Findings {
  private readonly byRule = new Map<string, string[]>();

  add(rule: string, example: string): void {
    const examples = this.byRule.get(rule) ?? [];
    examples.push(example);
    this.byRule.set(rule, examples);
  }

  get count(): number {
    return this.byRule.size;
  }

  lines(): string[] {
    return [...this.byRule.entries()].map(
      ([rule, examples]) => `${rule}: ${examples.length} (e.g. ${examples.slice(0, EXAMPLES).join('; ')})`,
    );
  }
}

const SANDBOX_ID = /SBX([0-9A-F]{8})([0-9A-F]{8,})$/;

function sandboxId(waMessageId: string): { prefix: string; counter: number } | null {
  const match = SANDBOX_ID.exec(waMessageId);
  return match?.[1] && match[2] ? { prefix: match[1], counter: Number.parseInt(match[2], 16) } : null;
}

function groupBy<T>(items: Iterable<T>, key: (item: T) => string | null): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    if (k === null) continue;
    const group = groups.get(k) ?? [];
    group.push(item);
    groups.set(k, group);
  }
  return groups;
}

function analyze(o: Observations): { findings: Findings; summary: string[] } {
  const findings = new Findings();
  const rowsByText = groupBy(o.finalRows.values(), (r) => r.text);
  const rowOf = (m: Message) => rowsByText.get(m.text)?.[0];
  const messageByText = new Map(o.messages.map((m) => [m.text, m]));
  const statusAt = (generation: number, rowId: string) => o.atKill.get(generation)?.get(rowId)?.status;

  // Which process issued a sandbox id: its random prefix, learned from its sent logs and its plain 200 answers (a
  // keyed answer may carry the id of an earlier process's send).
  const generationOf = new Map<string, number>();
  const learn = (waMessageId: string, generation: number, where: string) => {
    const prefix = sandboxId(waMessageId)?.prefix;
    if (!prefix) return findings.add('a wa message id the sandbox does not issue', `${waMessageId} (${where})`);
    const known = generationOf.get(prefix);
    if (known === undefined) generationOf.set(prefix, generation);
    else if (known !== generation) findings.add('one sandbox id prefix in two processes', `${waMessageId} (${where})`);
  };
  for (const [generation, logs] of o.logs) {
    for (const entries of logs.values()) for (const e of entries) learn(e.messageId, generation, `log ${generation}`);
  }
  for (const a of o.attempts) {
    if (!a.message.key && a.status === 200 && a.waMessageId) learn(a.waMessageId, a.generation, a.message.text);
  }
  const issuedBy = (waMessageId: string | null | undefined) => {
    const prefix = waMessageId ? sandboxId(waMessageId)?.prefix : undefined;
    return prefix ? generationOf.get(prefix) : undefined;
  };
  /** A send by process `generation` that is not the row's final one: allowed if a later process sent it again and
   * the row was still `queued` when `generation` died (its `sent` state was not committed yet). */
  const resentAfterCrash = (row: Row, generation: number) => {
    const last = issuedBy(row.waMessageId);
    return last !== undefined && last > generation && statusAt(generation, row.id) === 'queued';
  };
  const resent = { byAnswer: new Set<string>(), byLog: new Set<string>() };

  // Rows against requests: one row per text, one per key, each for a text this run sent.
  for (const [text, rows] of rowsByText) {
    if (rows.length > 1) findings.add('a message with more than one row', `"${text}": ${rows.length} rows`);
  }
  for (const [key, rows] of groupBy(o.finalRows.values(), (r) => (r.key ? `${r.agentId} ${r.key}` : null))) {
    if (rows.length > 1) findings.add('an Idempotency-Key with more than one row', `${key}: ${rows.length} rows`);
  }
  for (const row of o.finalRows.values()) {
    const message = row.text === null ? undefined : messageByText.get(row.text);
    if (!message || message.agentId !== row.agentId || message.key !== row.key) {
      findings.add('a row no request asked for', `${row.id} "${row.text}" (${row.agentId}, key ${row.key})`);
    }
  }

  // Every answer.
  for (const a of o.attempts) {
    const m = a.message;
    const row = rowOf(m);
    const what = `"${m.text}" (process ${a.generation})`;
    if (!a.done || a.status === null) continue;
    if (accepted(a)) {
      const answered = a.messageId ? o.finalRows.get(a.messageId) : undefined;
      if (!answered) {
        findings.add('answered 200/202, and no row', `${what}: ${a.status} messageId ${a.messageId}`);
        continue;
      }
      if (answered.text !== m.text || answered.agentId !== m.agentId) {
        findings.add("answered with another message's id", `${what}: ${a.messageId} holds "${answered.text}"`);
      }
      if (a.status === 202 && a.state !== 'queued' && a.state !== 'sending') {
        findings.add('a 202 for a message that will not be sent', `${what}: status ${a.state}`);
      }
      if (a.status !== 200) continue;
      if (a.state !== 'sent' || !a.waMessageId) {
        findings.add('a 200 without status sent and a waMessageId', `${what}: ${a.state} ${a.waMessageId}`);
      } else if (answered.waMessageId && a.waMessageId !== answered.waMessageId) {
        const by = issuedBy(a.waMessageId);
        if (by !== undefined && resentAfterCrash(answered, by)) resent.byAnswer.add(answered.id);
        else {
          findings.add(
            'a message answered 200 was sent again, not after a crash that lost its sent state',
            `${what}: answered ${a.waMessageId} (process ${by}), row ${answered.waMessageId} (process ${issuedBy(answered.waMessageId)}), at that kill ${by === undefined ? '?' : statusAt(by, answered.id)}`,
          );
        }
      }
    } else if (a.status === 409 || a.status === 429) {
      if (a.status === 409 && a.code !== 'SESSION_NOT_READY') findings.add('an unexpected 409', `${what}: ${a.code}`);
      if (!m.key && row) findings.add('refused with 409/429, and a row', `${what}: row ${row.id} ${row.status}`);
    } else if (a.status === 503) {
      if (!m.key && row && row.status !== 'failed' && statusAt(a.generation, row.id) !== 'queued') {
        findings.add('answered 503, and sent', `${what}: row ${row.id} ${row.status}`);
      }
    } else if (a.status >= 500) {
      findings.add('a 5xx other than 503', `${what}: ${a.status} ${a.code}`);
    } else {
      findings.add('an unexpected status', `${what}: ${a.status} ${a.code}`);
    }
  }

  // Keys: one messageId per key, the row that holds the key.
  for (const m of o.messages) {
    if (!m.key) continue;
    const ids = new Set(m.tries.filter(accepted).map((a) => a.messageId));
    const row = rowOf(m);
    if (ids.size > 1) findings.add('one Idempotency-Key answered with several messageIds', `${m.key}: ${[...ids]}`);
    else if (ids.size === 1 && row && !ids.has(row.id)) {
      findings.add("a key's answers name another row than the key's", `${m.key}: ${[...ids]} vs ${row.id}`);
    }
  }

  // Final states: sent, or failed only as the documented 503 path.
  for (const row of o.finalRows.values()) {
    const message = row.text === null ? undefined : messageByText.get(row.text);
    if (row.status === 'sent') {
      if (!row.waMessageId) findings.add('a sent row without a wa_message_id', row.id);
    } else if (row.status === 'failed') {
      if (!row.error?.startsWith('not sent:') || message?.tries.some(accepted)) {
        findings.add('a failed row that was not given up after a 503', `"${row.text}": ${row.error}`);
      }
    } else findings.add('a row left unsent', `"${row.text}": ${row.status} (${row.error})`);
  }

  // A committed outcome is final: what the table held at a kill never changes again.
  for (const [generation, rows] of o.atKill) {
    for (const before of rows.values()) {
      if (before.status === 'queued') continue;
      const after = o.finalRows.get(before.id);
      if (after?.status !== before.status || after.waMessageId !== before.waMessageId) {
        findings.add(
          'a row sent or failed at a kill changed afterwards',
          `"${before.text}": ${before.status} ${before.waMessageId} at kill ${generation}, then ${after?.status} ${after?.waMessageId}`,
        );
      }
    }
  }

  // The sent logs against the table.
  let confirmed = 0;
  const confirmedIds = new Set<string>();
  for (const [generation, logs] of o.logs) {
    for (const [agentId, entries] of logs) {
      const texts = new Set<string>();
      for (const e of entries) {
        const where = `"${e.text}" in the log of process ${generation}`;
        if (e.text === undefined || e.kind !== 'text') {
          findings.add('a sent log entry that is not a text', `${e.kind} ${e.messageId} (process ${generation})`);
          continue;
        }
        if (texts.has(e.text)) findings.add('sent twice by one process', where);
        texts.add(e.text);
        const candidates = rowsByText.get(e.text) ?? [];
        const row = candidates.find((r) => r.waMessageId === e.messageId) ?? candidates[0];
        if (!row) {
          findings.add('sent without a row', where);
          continue;
        }
        if (row.agentId !== agentId || row.toJid !== e.to) {
          findings.add('sent by another agent or to another recipient than its row', `${where}: to ${e.to}`);
        }
        if (e.messageId === row.waMessageId) confirmedIds.add(row.id);
        else if (row.status !== 'sent') {
          // Reported above, as left unsent or failed; whether it was sent after a committed outcome is checked below.
        } else if (resentAfterCrash(row, generation)) resent.byLog.add(row.id);
        else {
          findings.add(
            "a send that is not its row's recorded one, and not explained by a crash that lost the sent state",
            `${where}: ${e.messageId}, row ${row.waMessageId}, at that kill ${statusAt(generation, row.id)}`,
          );
        }
        for (const [killed, rows] of o.atKill) {
          const before = rows.get(row.id)?.status;
          if (killed < generation && before !== undefined && before !== 'queued') {
            findings.add('sent again after its outcome was committed', `${where}: ${before} at kill ${killed}`);
          }
        }
      }
    }
  }

  // Every wa_message_id of the table was issued by the sandbox, as far as the logs read can tell.
  let unobservable = 0;
  for (const row of o.finalRows.values()) {
    if (row.status !== 'sent' || !row.waMessageId) continue;
    if (confirmedIds.has(row.id)) {
      confirmed++;
      continue;
    }
    const generation = issuedBy(row.waMessageId);
    const entries = generation === undefined ? undefined : o.logs.get(generation)?.get(row.agentId);
    const last = Math.max(-1, ...(entries ?? []).map((e) => sandboxId(e.messageId)?.counter ?? -1));
    const counter = sandboxId(row.waMessageId)?.counter ?? Number.POSITIVE_INFINITY;
    if (generation === o.lastGeneration || (entries && counter <= last)) {
      findings.add(
        'a wa_message_id missing from the sent log of the process that issued it',
        `"${row.text}": ${row.waMessageId} (process ${generation})`,
      );
    } else unobservable++;
  }

  const sentRows = [...o.finalRows.values()].filter((r) => r.status === 'sent').length;
  const resumed = new Set<string>();
  for (const rows of o.atKill.values()) for (const r of rows.values()) if (r.status === 'queued') resumed.add(r.id);
  const resentRows = new Set([...resent.byAnswer, ...resent.byLog]);
  const keyed = o.messages.filter((m) => m.key);
  const unknown = o.messages.filter((m) => !m.key && m.tries.every((a) => a.status === null));
  const statusLabel = (a: Attempt) =>
    a.status === null
      ? 'no answer'
      : `${a.status}${a.code && a.status !== 200 && a.status !== 202 ? ` ${a.code}` : ''}`;
  const summary = [
    `requests: ${o.attempts.length} (${formatCounts(countBy(o.attempts, statusLabel))})`,
    `messages: ${o.messages.length} (${o.messages.length - keyed.length} plain, ${keyed.length} keyed: ` +
      `${keyed.filter((m) => m.tries.filter((a) => !a.replay).length > 1).length} sent more than once, ` +
      `${keyed.filter((m) => m.tries.some((a) => a.replay)).length} replayed after their answer); ` +
      `plain without an answer: ${unknown.length}, of which ${unknown.filter((m) => rowOf(m)).length} have a row`,
    `rows: ${o.finalRows.size} (${formatCounts(countBy(o.finalRows.values(), (r) => r.status))}); ` +
      `${resumed.size} were queued when a process died, ` +
      `${[...resumed].filter((id) => o.finalRows.get(id)?.status === 'sent').length} of them sent by a later one`,
    `resent after a crash: ${resentRows.size} rows (seen through 200 answers: ${resent.byAnswer.size}, ` +
      `through sent logs: ${resent.byLog.size})`,
    `sandbox sent logs: ${confirmed} of ${sentRows} sent rows found there; ${unobservable} sent by a killed ` +
      `process after its log was read (not observable)`,
  ];
  return { findings, summary };
}

// ------------------------------------------------------------------------------------------------------------ crash

async function crash(): Promise<void> {
  check(existsSync(MAIN), `${path.relative(process.cwd(), MAIN)} is missing: run \`npm run build\` first`);
  const adminUrl = process.env.CRASH_DATABASE_URL || process.env.TEST_DATABASE_URL;
  check(
    adminUrl,
    'the crash suite needs PostgreSQL: set CRASH_DATABASE_URL (or TEST_DATABASE_URL), e.g. ' +
      'postgres://postgres@127.0.0.1:5432/test',
  );
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'wamt-crash-'));
  run.onCleanup(`remove ${tmp}`, () => rm(tmp, { recursive: true, force: true, maxRetries: 3 }));
  const dataDir = path.join(tmp, 'data');
  const database = await createScratchDatabase(run, adminUrl, 'wamt_crash');
  const db = pgClient(database.url);
  await db.connect();
  run.onCleanup('close the connection to the database', () => db.end());
  run.step(`database ${database.label} created; DATA_DIR ${dataDir}, kept across the restarts`);

  const adminKey = randomBytes(24).toString('hex');
  const config: ServiceConfig = {
    dataDir,
    cwd: tmp,
    adminKey,
    dbUrl: database.url,
    databaseLabel: `PostgreSQL ${database.label}`,
    logLevel: 'warn',
    env: SERVICE_ENV,
  };
  const usedPorts = new Set<number>();
  let generation = await startGeneration(1, config, usedPorts);
  for (let i = 0; i < AGENT_COUNT; i++) {
    const agent = { agentId: `crash-${RUN_TAG}-${i}`, key: `crash-key-${randomBytes(16).toString('hex')}` };
    const { base } = generation.service;
    const created = await api<SessionStatus>(base, 'POST', '/sessions', adminKey, {
      userId: randomUUID(),
      agentId: agent.agentId,
      agentName: `Crash ${i}`,
      apikey: agent.key,
    });
    check(created.engine === 'sandbox', `POST /sessions: engine ${created.engine}, expected sandbox`);
    await api(base, 'POST', `/sandbox/agents/${agent.agentId}/scan`, adminKey, {});
    await waitSessionReady(base, adminKey, agent.agentId, SESSION_READY_TIMEOUT_MS);
    agents.push(agent);
  }
  run.step(`${AGENT_COUNT} agents created, scanned and ready: ${agents.map((a) => a.agentId).join(', ')}`);

  up = true;
  const senders = Array.from({ length: SENDERS }, (_, i) => sender(i));
  run.step(`${SENDERS} senders started (${Math.round(KEYED_SHARE * 100)} % with an Idempotency-Key)`);

  const logs = new Map<number, Logs>();
  const atKill = new Map<number, Map<string, Row>>();
  for (let kill = 1; kill <= KILLS; kill++) {
    const answered = await loadFor(between(LOAD_MS));
    const read = await readLogs(generation, adminKey);
    logs.set(generation.index, read.logs);
    const { child } = generation.service;
    child.kill('SIGKILL');
    up = false;
    const inFlight = attempts.filter((a) => !a.done).length;
    const exit = await Promise.race([generation.service.exited, sleep(KILL_TIMEOUT_MS).then(() => null)]);
    check(exit?.signal === 'SIGKILL', `process ${generation.index} did not die of SIGKILL: ${JSON.stringify(exit)}`);
    const quietMs = await quiesce(db);
    const rows = await readRows(db);
    atKill.set(generation.index, rows);
    const entries = [...read.logs.values()].reduce((n, e) => n + e.length, 0);
    const queued = [...rows.values()].filter((r) => r.status === 'queued').length;
    run.step(
      `kill ${kill}/${KILLS}: SIGKILL to pid ${child.pid} after ${seconds(Date.now() - generation.startedAt)} up, ` +
        `${answered} answers from it, ${inFlight} requests in flight; its sent logs read just before ` +
        `(${entries} entries${read.problems.length ? `; unread: ${read.problems.join(', ')}` : ''}); ` +
        `database quiet after ${quietMs} ms: ${rows.size} rows, ${queued} queued`,
    );
    generation = await startGeneration(kill + 1, config, usedPorts);
    const polls = await agentsReady(generation, adminKey);
    up = true;
    run.step(`restart ${kill}/${KILLS}: ready, ${AGENT_COUNT} agents connected again (${polls} polls); load resumes`);
  }

  await loadFor(FINAL_LOAD_MS);
  stopLoad = true;
  const stopped = await Promise.race([
    Promise.all(senders).then(() => true),
    sleep(SENDERS_STOP_TIMEOUT_MS).then(() => false),
  ]);
  check(stopped, `the senders did not stop within ${seconds(SENDERS_STOP_TIMEOUT_MS)}`);
  run.step(`load stopped: ${attempts.length} requests for ${messages.length} messages`);

  const settleStarted = Date.now();
  let queued = -1;
  while (Date.now() - settleStarted < SETTLE_TIMEOUT_MS) {
    const { rows } = await db.query(`SELECT count(*)::int AS n FROM outbox_messages WHERE status = 'queued'`);
    queued = Number(rows[0]?.n);
    if (queued === 0) break;
    await sleep(POLL_MS * 2);
  }
  run.step(queued === 0 ? 'no row queued any more' : `${queued} rows still queued after ${seconds(SETTLE_TIMEOUT_MS)}`);
  const last = await readLogs(generation, adminKey);
  check(last.problems.length === 0, `the last process's sent logs could not be read: ${last.problems.join(', ')}`);
  logs.set(generation.index, last.logs);
  await stopService(generation.service);
  run.step(`SIGTERM to the last process: exited with code 0`);
  const finalRows = await readRows(db);

  const { findings, summary } = analyze({
    messages,
    attempts,
    logs,
    atKill,
    finalRows,
    lastGeneration: generation.index,
  });
  console.log(`crash: kills: ${KILLS} (SIGKILL under load, then a restart on the same database and DATA_DIR)`);
  for (const line of summary) console.log(`crash: ${line}`);
  for (const line of findings.lines()) console.error(`crash: VIOLATION: ${line}`);
  if (findings.count > 0) throw new ScriptError(`${findings.count} kind(s) of violation (above)`, false);
}

run.start(crash, OVERALL_TIMEOUT_MS);
