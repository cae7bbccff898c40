// How large an inbound file of each kind may be before it is not downloaded: WhatsApp's own limits, rounded up.
import type { InboundMessageType } from '../engines/engine.js';

const MIB = 1024 * 1024;

/** The kinds of message that carry a file to download. */
export const FILE_KINDS = ['image', 'audio', 'video', 'document', 'sticker'] as const;
export type FileKind = (typeof FILE_KINDS)[number];

const KIND_MAX_BYTES: Record<FileKind, number> = {
  image: 16 * MIB,
  audio: 16 * MIB,
  sticker: 1 * MIB,
  video: 64 * MIB,
  document: 100 * MIB,
};

export function isFileKind(type: InboundMessageType): type is FileKind {
  return (FILE_KINDS as readonly string[]).includes(type);
}

/** The cap for one file of this kind: its own, or MEDIA_DOWNLOAD_MAX_MB when that is lower. */
export function downloadCap(kind: FileKind, overallMaxBytes: number): number {
  return Math.min(KIND_MAX_BYTES[kind], overallMaxBytes);
}
