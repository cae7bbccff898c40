// Baileys' auth state (creds and signal keys) in the baileys_auth table, so a restarted instance resumes the login.
import {
  type AuthenticationCreds,
  type AuthenticationState,
  BufferJSON,
  initAuthCreds,
  proto,
  type SignalDataSet,
  type SignalDataTypeMap,
} from 'baileys';
import { and, eq, inArray, sql } from 'drizzle-orm';
import type { Database } from '../../db/client.js';
import { baileysAuth } from '../../db/schema.js';

const CREDS_KEY = 'creds';

const serialize = (value: unknown): string => JSON.stringify(value, BufferJSON.replacer);
const deserialize = (text: string): unknown => JSON.parse(text, BufferJSON.reviver);

/** A login is stored once the phone has linked this device; before that the creds are a throwaway QR identity. */
function isLinked(creds: AuthenticationCreds): boolean {
  return Boolean(creds.me?.id && creds.account);
}

export async function hasStoredCreds(database: Database, agentId: string): Promise<boolean> {
  const rows = await database.db
    .select({ key: baileysAuth.key })
    .from(baileysAuth)
    .where(and(eq(baileysAuth.agentId, agentId), eq(baileysAuth.key, CREDS_KEY)))
    .limit(1);
  return rows.length > 0;
}

export async function deleteStoredAuth(database: Database, agentId: string): Promise<void> {
  await database.db.delete(baileysAuth).where(eq(baileysAuth.agentId, agentId));
}

/**
 * One agent's auth state. Writes are queued in order, so an older creds snapshot never lands after a newer one,
 * and once the login is cleared no late write from a closing socket can bring it back.
 */
export class BaileysAuthStore {
  private queue: Promise<unknown> = Promise.resolve();
  private cleared = false;

  constructor(
    private readonly database: Database,
    readonly agentId: string,
  ) {}

  async load(): Promise<AuthenticationState> {
    this.cleared = false;
    const [row] = await this.database.db
      .select({ value: baileysAuth.value })
      .from(baileysAuth)
      .where(and(eq(baileysAuth.agentId, this.agentId), eq(baileysAuth.key, CREDS_KEY)));
    const creds = row ? (deserialize(row.value) as AuthenticationCreds) : initAuthCreds();
    return {
      creds,
      keys: {
        get: (type, ids) => this.getKeys(type, ids),
        set: (data) => this.enqueue(() => this.setKeys(data)),
      },
    };
  }

  /** Saves the creds Baileys just updated (it mutates the object it was given). */
  saveCreds(creds: AuthenticationCreds): Promise<void> {
    if (!isLinked(creds)) return Promise.resolve();
    const value = serialize(creds);
    return this.enqueue(() => this.upsert([{ key: CREDS_KEY, value }]));
  }

  /** Waits for every queued write. */
  async flush(): Promise<void> {
    await this.queue.catch(() => {});
  }

  /** Deletes the login for good: queued writes finish first, later ones are dropped. */
  async clear(): Promise<void> {
    this.cleared = true;
    await this.flush();
    await deleteStoredAuth(this.database, this.agentId);
  }

  private enqueue(write: () => Promise<void>): Promise<void> {
    const next = this.queue.then(() => (this.cleared ? undefined : write()));
    this.queue = next.catch(() => {});
    return next;
  }

  private async getKeys<T extends keyof SignalDataTypeMap>(type: T, ids: string[]) {
    const result: { [id: string]: SignalDataTypeMap[T] } = {};
    if (ids.length === 0) return result;
    const keyFor = new Map(ids.map((id) => [`${type}-${id}`, id]));
    const rows = await this.database.db
      .select({ key: baileysAuth.key, value: baileysAuth.value })
      .from(baileysAuth)
      .where(and(eq(baileysAuth.agentId, this.agentId), inArray(baileysAuth.key, [...keyFor.keys()])));
    for (const row of rows) {
      const id = keyFor.get(row.key);
      if (id === undefined) continue;
      let value = deserialize(row.value);
      // Baileys expects this one as a protobuf object, not the plain JSON it was saved as.
      if (type === 'app-state-sync-key' && value) {
        value = proto.Message.AppStateSyncKeyData.fromObject(value as Record<string, unknown>);
      }
      result[id] = value as SignalDataTypeMap[T];
    }
    return result;
  }

  private async setKeys(data: SignalDataSet): Promise<void> {
    const upserts: { key: string; value: string }[] = [];
    const deletes: string[] = [];
    for (const [type, entries] of Object.entries(data)) {
      for (const [id, value] of Object.entries(entries ?? {})) {
        if (value == null) deletes.push(`${type}-${id}`);
        else upserts.push({ key: `${type}-${id}`, value: serialize(value) });
      }
    }
    await this.database.db.transaction(async (tx) => {
      if (upserts.length > 0) await this.upsert(upserts, tx);
      if (deletes.length > 0) {
        await tx
          .delete(baileysAuth)
          .where(and(eq(baileysAuth.agentId, this.agentId), inArray(baileysAuth.key, deletes)));
      }
    });
  }

  private async upsert(rows: { key: string; value: string }[], tx: Pick<Database['db'], 'insert'> = this.database.db) {
    await tx
      .insert(baileysAuth)
      .values(rows.map((row) => ({ agentId: this.agentId, ...row })))
      .onConflictDoUpdate({
        target: [baileysAuth.agentId, baileysAuth.key],
        set: { value: sql`excluded.value`, updatedAt: sql`now()` },
      });
  }
}
