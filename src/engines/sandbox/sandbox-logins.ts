// Where the sandbox keeps the phone that scanned each agent: the sandbox_logins table, or a Map when used on its own.
import type { Database } from '../../db/client.js';

/** The sandbox's stored logins: one phone per agent, kept until the agent logs out. */
export interface SandboxLogins {
  phone(agentId: string): Promise<string | null>;
  save(agentId: string, phone: string): Promise<void>;
  delete(agentId: string): Promise<void>;
}

/** Every process on the database sees the same logins, so a scanned session resumes on any of them. */
export function databaseSandboxLogins(database: Database): SandboxLogins {
  return {
    async phone(agentId) {
      const [row] = await database.query('SELECT phone FROM sandbox_logins WHERE agent_id = $1', [agentId]);
      return typeof row?.phone === 'string' ? row.phone : null;
    },
    async save(agentId, phone) {
      await database.query(
        `INSERT INTO sandbox_logins (agent_id, phone) VALUES ($1, $2)
         ON CONFLICT (agent_id) DO UPDATE SET phone = EXCLUDED.phone, updated_at = now()`,
        [agentId, phone],
      );
    },
    async delete(agentId) {
      await database.query('DELETE FROM sandbox_logins WHERE agent_id = $1', [agentId]);
    },
  };
}

/** For an engine built without a database (unit tests): the logins last as long as the engine. */
export function memorySandboxLogins(): SandboxLogins {
  const phones = new Map<string, string>();
  return {
    phone: async (agentId) => phones.get(agentId) ?? null,
    save: async (agentId, phone) => {
      phones.set(agentId, phone);
    },
    delete: async (agentId) => {
      phones.delete(agentId);
    },
  };
}
