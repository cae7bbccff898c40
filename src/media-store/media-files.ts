// Serves a stored file behind its signed link: from this member's disk, or from the member whose disk holds it.
import type { Readable } from 'node:stream';
import { Agent, request as send } from 'undici';
import type { Clock } from '../clock.js';
import type { MemberView } from '../cluster/cluster.js';
import { FORWARDED_BY } from '../cluster/forward.js';
import { AppError, errorMessage } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { MediaLinkCheck, MediaLinks } from './media-links.js';
import type { MediaStore } from './media-store.js';
import type { MediaFileRow, MediaStoreRepository } from './media-store.repository.js';

export interface ServedFile {
  stream: Readable;
  mimeType: string;
  size: number;
  /** For content-disposition: the sender's file name, or one made of the id and the type. */
  filename: string;
}

export interface MediaFilesOptions {
  store: Pick<MediaStore, 'open'>;
  repository: Pick<MediaStoreRepository, 'find'>;
  links: MediaLinks;
  clock: Clock;
  instanceId: string;
  /** The cluster's members, to find the one whose disk holds a file; absent for a lone process. */
  members?: (() => Promise<MemberView[]>) | undefined;
  logger: Logger;
}

export class MediaFiles {
  private readonly agent = new Agent({ connect: { timeout: 5_000 }, headersTimeout: 10_000, bodyTimeout: 30_000 });

  constructor(private readonly options: MediaFilesOptions) {}

  /**
   * The file behind a link: MEDIA_LINK_INVALID when the signature is not ours or the link has expired,
   * MEDIA_NOT_FOUND when the file was purged (or its member is gone). `forwarded`: the request came from a peer,
   * which must be answered from this disk and never sent on.
   */
  async open(check: MediaLinkCheck, forwarded: boolean): Promise<ServedFile> {
    if (!this.options.links.verify(check, this.options.clock.now())) throw new AppError('MEDIA_LINK_INVALID');
    const row = await this.options.repository.find(check.id);
    if (!row) throw new AppError('MEDIA_NOT_FOUND');
    const served = (stream: Readable): ServedFile => ({
      stream,
      mimeType: row.mimeType,
      size: row.sizeBytes,
      filename: row.filename ?? defaultFilename(row),
    });
    const local = await this.options.store.open(row);
    if (local) return served(local);
    if (forwarded || row.instanceId === this.options.instanceId || !this.options.members) {
      throw new AppError('MEDIA_NOT_FOUND');
    }
    return served(await this.fromMember(row, check));
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  /** The bytes from the member that downloaded them, streamed through; that member checks the link again. */
  private async fromMember(row: MediaFileRow, check: MediaLinkCheck): Promise<Readable> {
    const members = (await this.options.members?.()) ?? [];
    const holder = members.find((member) => member.instanceId === row.instanceId && member.live && member.url);
    if (!holder?.url) throw new AppError('MEDIA_NOT_FOUND');
    const path = `/media/${encodeURIComponent(check.id)}?expires=${check.expires}&sig=${encodeURIComponent(check.sig)}`;
    try {
      const answer = await send(new URL(path, holder.url), {
        method: 'GET',
        headers: { [FORWARDED_BY]: this.options.instanceId },
        dispatcher: this.agent,
      });
      if (answer.statusCode === 200) return answer.body;
      answer.body.destroy();
    } catch (err) {
      this.options.logger.warn({
        event: 'media.forward_failed',
        mediaId: row.id,
        holder: holder.instanceId,
        err: errorMessage(err),
      });
    }
    throw new AppError('MEDIA_NOT_FOUND');
  }
}

const EXTENSIONS: Record<string, string> = {
  'image/jpeg': 'jpg',
  'image/png': 'png',
  'image/webp': 'webp',
  'image/gif': 'gif',
  'audio/ogg': 'ogg',
  'audio/mpeg': 'mp3',
  'audio/mp4': 'm4a',
  'audio/aac': 'aac',
  'video/mp4': 'mp4',
  'video/3gpp': '3gp',
  'application/pdf': 'pdf',
};

function defaultFilename(row: Pick<MediaFileRow, 'id' | 'kind' | 'mimeType'>): string {
  const base = row.mimeType.split(';')[0]?.trim().toLowerCase() ?? '';
  const extension = EXTENSIONS[base];
  return extension ? `${row.kind}-${row.id}.${extension}` : `${row.kind}-${row.id}`;
}

/** `attachment` with an ASCII fallback name and the exact one in RFC 5987 form (never rendered in a browser tab). */
export function contentDisposition(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename)}`;
}
