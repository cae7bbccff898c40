// The media_files table: one row per stored inbound file (which member's disk holds it, what it is).
import type { Database } from '../db/client.js';
import { purgeInBatches } from '../db/retention.js';

export interface MediaFileRow {
  id: string;
  agentId: string;
  messageId: string;
  /** The member whose MEDIA_STORE_DIR holds the bytes. */
  instanceId: string;
  kind: string;
  mimeType: string;
  filename: string | null;
  sizeBytes: number;
  sha256: string;
  createdAt: Date;
}

export class MediaStoreRepository {
  constructor(private readonly database: Pick<Database, 'query' | 'queryRelaxed'>) {}

  /**
   * Committed without waiting for the disk flush (it is on the path of every file to the AI): a crash of the database
   * server itself can forget the last rows, whose links then answer 404 while their files wait for the purge.
   */
  async insert(row: MediaFileRow): Promise<void> {
    await this.database.queryRelaxed(
      `INSERT INTO media_files (id, agent_id, message_id, instance_id, kind, mime_type, filename, size_bytes, sha256, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [
        row.id,
        row.agentId,
        row.messageId,
        row.instanceId,
        row.kind,
        row.mimeType,
        row.filename,
        row.sizeBytes,
        row.sha256,
        row.createdAt.toISOString(),
      ],
    );
  }

  async find(id: string): Promise<MediaFileRow | null> {
    const rows = await this.database.query(
      `SELECT id, agent_id, message_id, instance_id, kind, mime_type, filename, size_bytes, sha256, created_at
         FROM media_files WHERE id = $1`,
      [id],
    );
    const row = rows[0];
    if (!row) return null;
    return {
      id: String(row.id),
      agentId: String(row.agent_id),
      messageId: String(row.message_id),
      instanceId: String(row.instance_id),
      kind: String(row.kind),
      mimeType: String(row.mime_type),
      filename: row.filename === null ? null : String(row.filename),
      sizeBytes: Number(row.size_bytes),
      sha256: String(row.sha256),
      createdAt: row.created_at instanceof Date ? row.created_at : new Date(String(row.created_at)),
    };
  }

  /** Deletes the rows of every member older than `cutoff` (each member deletes its own files: MediaStore.purge). */
  purgeBefore(cutoff: Date, signal?: AbortSignal): Promise<number> {
    const target = { table: 'media_files', key: 'id', olderThan: 'created_at < $1' };
    return purgeInBatches(this.database, target, cutoff, { signal });
  }
}
