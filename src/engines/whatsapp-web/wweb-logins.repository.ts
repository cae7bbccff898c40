// The SQL of the wwebjs_logins table: each agent's packed whatsapp-web login, shared by every process on the database.
import type { Database } from '../../db/client.js';

export interface StoredLogin {
  /** Changes on every write: which copy of the login this is. */
  generation: string;
  /** The packed profile (profile-archive.ts); null when the caller already has this generation. */
  data: Buffer | null;
}

export class WwebLoginsRepository {
  constructor(private readonly database: Database) {}

  /** The agent's login; its bytes are left out when `known` is its generation, so an unchanged copy costs no transfer. */
  async load(agentId: string, known: string | null): Promise<StoredLogin | null> {
    const [row] = await this.database.query(
      `SELECT generation, CASE WHEN generation = $2::text THEN NULL ELSE data END AS data
       FROM wwebjs_logins WHERE agent_id = $1`,
      [agentId, known],
    );
    if (!row) return null;
    return { generation: String(row.generation), data: toBuffer(row.data) };
  }

  async exists(agentId: string): Promise<boolean> {
    const rows = await this.database.query('SELECT 1 FROM wwebjs_logins WHERE agent_id = $1', [agentId]);
    return rows.length > 0;
  }

  /**
   * Writes `data` as `generation`, only over the copy the caller started from: `expected` is that copy's generation,
   * or null when there was no row. False when another process wrote or deleted the login since: nothing is written.
   */
  async save(agentId: string, data: Buffer, expected: string | null, generation: string): Promise<boolean> {
    const rows =
      expected === null
        ? await this.database.query(
            `INSERT INTO wwebjs_logins (agent_id, generation, data) VALUES ($1, $2, $3)
             ON CONFLICT (agent_id) DO NOTHING RETURNING 1`,
            [agentId, generation, data],
          )
        : await this.database.query(
            `UPDATE wwebjs_logins SET generation = $2, data = $3, updated_at = now()
             WHERE agent_id = $1 AND generation = $4 RETURNING 1`,
            [agentId, generation, data, expected],
          );
    return rows.length > 0;
  }

  async delete(agentId: string): Promise<void> {
    await this.database.query('DELETE FROM wwebjs_logins WHERE agent_id = $1', [agentId]);
  }
}

/** bytea arrives as a Buffer from pg and as a Uint8Array from PGlite. */
function toBuffer(value: unknown): Buffer | null {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return null;
}
