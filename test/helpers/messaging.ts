// Helpers for the messaging HTTP tests: a connected sandbox agent and shortcuts for its endpoints.
import type { TestApp } from './app.js';

export interface ConnectedAgent {
  agentId: string;
  auth: { authorization: string };
}

/** Creates the agent with its own key and plays the phone scanning its QR code. */
export async function connectAgent(t: TestApp, agentId: string, userId = `user-${agentId}`): Promise<ConnectedAgent> {
  const apikey = `key-${agentId}-0123456789`;
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
    payload: {},
  });
  if (scanned.statusCode !== 200) throw new Error(`scan ${agentId}: ${scanned.body}`);
  return { agentId, auth: { authorization: `Bearer ${apikey}` } };
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
