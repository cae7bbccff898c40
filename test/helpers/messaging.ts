// Helpers for the messaging HTTP tests: a connected sandbox agent and shortcuts for its endpoints.
import type { TestApp } from './app.js';

export interface ConnectedAgent {
  agentId: string;
  auth: { authorization: string };
}

/**
 * Creates the agent with its own key and plays the phone scanning its QR code: `userId` and `apikey` default from the
 * agent's id, `phone` is the number the sandbox logs in as (its default when absent).
 */
export async function connectAgent(
  t: TestApp,
  agentId: string,
  { userId = `user-${agentId}`, apikey = `key-${agentId}-0123456789`, phone }: ConnectOptions = {},
): Promise<ConnectedAgent> {
  const created = await t.app.inject({
    method: 'POST',
    url: '/sessions',
    headers: t.admin,
    payload: { userId, agentId, agentName: agentId, apikey },
  });
  if (created.statusCode !== 200) throw new Error(`create ${agentId}: ${created.body}`);
  const scanned = await t.app.inject({
    method: 'POST',
    url: `/sandbox/agents/${agentId}/scan`,
    headers: t.admin,
    payload: phone === undefined ? {} : { phone },
  });
  if (scanned.statusCode !== 200) throw new Error(`scan ${agentId}: ${scanned.body}`);
  return { agentId, auth: { authorization: `Bearer ${apikey}` } };
}

export interface ConnectOptions {
  userId?: string;
  apikey?: string;
  phone?: string;
}

/** Delivers a message to the agent as its sandbox phone receives it; returns the message's id. */
export async function deliverInbound(t: TestApp, agentId: string, body: Record<string, unknown>): Promise<string> {
  const response = await t.app.inject({
    method: 'POST',
    url: `/sandbox/agents/${agentId}/inbound`,
    headers: t.admin,
    payload: body,
  });
  if (response.statusCode !== 200) throw new Error(`inbound to ${agentId}: ${response.statusCode} ${response.body}`);
  return response.json().data.messageId as string;
}

export function sendText(
  t: TestApp,
  agent: ConnectedAgent,
  payload: Record<string, unknown>,
  headers: Record<string, string> = {},
) {
  return t.app.inject({
    method: 'POST',
    url: `/agents/${agent.agentId}/messages`,
    headers: { ...agent.auth, ...headers },
    payload,
  });
}

export function sent(t: TestApp, agentId: string) {
  return t.container.sandbox?.sent(agentId) ?? [];
}

/** Polls briefly until `check` holds: the dispatcher and the database answer asynchronously. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error('condition not met in time');
}
