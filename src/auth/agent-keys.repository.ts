// The key columns of whatsapp_user, read together with the shared api_keys table (which is only read here).
import type { Database } from '../db/client.js';
import type { KeySource } from './key-state.js';

/** One agent's key as stored, and its user's latest active key in api_keys. */
export interface AgentKeyRow {
  agentId: string;
  userId: string;
  apiKey: string | null;
  source: KeySource | null;
  latest: string | null;
  /** Only for a row without a source: whether its key is in api_keys at all (any state). */
  currentInApiKeys: boolean | null;
}

export interface AgentKeysRepository {
  /** Every agent, in one statement (the background sync). */
  all(): Promise<AgentKeyRow[]>;
  /** Writes the agent's key and its source; with `expected`, only while the row still holds that key. */
  save(agentId: string, apiKey: string, source: KeySource, expected?: string | null): Promise<void>;
  /** Records the source of the key the row holds now (rows from before migration 0003). */
  saveSource(agentId: string, source: KeySource, expected: string | null): Promise<void>;
}

// user_id may be uuid or integer in the shared table, and was text or uuid in the seed's whatsapp_user: compare as
// text. One scan of api_keys (DISTINCT ON), restricted to the users that have agents, rather than a look-up per agent:
// a cast user_id cannot use an index anyway. The tie-break on access_token keeps the pick stable between runs.
const ALL_KEYS = `
  WITH latest AS (
    SELECT DISTINCT ON (k.user_id::text) k.user_id::text AS user_id, k.access_token
    FROM api_keys k
    WHERE k.is_active AND k.user_id::text IN (SELECT w.user_id::text FROM whatsapp_user w)
    ORDER BY k.user_id::text, k.updated_at DESC NULLS LAST, k.access_token DESC
  )
  SELECT w.agent_id, w.user_id::text AS user_id, w.api_key, w.api_key_source, l.access_token AS latest,
    CASE WHEN w.api_key_source IS NULL AND w.api_key IS NOT NULL THEN EXISTS (
      SELECT 1 FROM api_keys k WHERE k.user_id::text = w.user_id::text AND k.access_token = w.api_key
    ) END AS current_in_api_keys
  FROM whatsapp_user w
  LEFT JOIN latest l ON l.user_id = w.user_id::text`;

const asSource = (value: unknown): KeySource | null => (value === 'api_keys' || value === 'admin' ? value : null);
const asText = (value: unknown): string | null => (typeof value === 'string' ? value : null);

export function createAgentKeysRepository(database: Pick<Database, 'query'>): AgentKeysRepository {
  return {
    async all() {
      const rows = await database.query(ALL_KEYS);
      return rows.map((row) => ({
        agentId: String(row.agent_id),
        userId: String(row.user_id),
        apiKey: asText(row.api_key),
        source: asSource(row.api_key_source),
        latest: asText(row.latest),
        currentInApiKeys: typeof row.current_in_api_keys === 'boolean' ? row.current_in_api_keys : null,
      }));
    },
    async save(agentId, apiKey, source, expected) {
      if (expected === undefined) {
        await database.query(
          'UPDATE whatsapp_user SET api_key = $2, api_key_source = $3, updated_at = now() WHERE agent_id = $1',
          [agentId, apiKey, source],
        );
        return;
      }
      await database.query(
        `UPDATE whatsapp_user SET api_key = $2, api_key_source = $3, updated_at = now()
         WHERE agent_id = $1 AND api_key IS NOT DISTINCT FROM $4`,
        [agentId, apiKey, source, expected],
      );
    },
    async saveSource(agentId, source, expected) {
      await database.query(
        `UPDATE whatsapp_user SET api_key_source = $2
         WHERE agent_id = $1 AND api_key IS NOT DISTINCT FROM $3 AND api_key_source IS NULL`,
        [agentId, source, expected],
      );
    },
  };
}
