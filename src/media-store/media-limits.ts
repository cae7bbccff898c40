// How large an inbound file of each kind may be before it is not downloaded: WhatsApp's own limits, rounded up.
import type { MediaKind } from '../engines/engine.js';

const MIB = 1024 * 1024;

const KIND_MAX_BYTES: Record<MediaKind, number> = {
  image: 16 * MIB,
  audio: 16 * MIB,
  sticker: 1 * MIB,
  video: 64 * MIB,
  document: 100 * MIB,
};

/** The cap for one file of this kind: its own, or MEDIA_DOWNLOAD_MAX_MB when that is lower. */
export function downloadCap(kind: MediaKind, overallMaxBytes: number): number {
  return Math.min(KIND_MAX_BYTES[kind], overallMaxBytes);
}
