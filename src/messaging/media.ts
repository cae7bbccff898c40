// Image input: base64 decoding under a size limit, and the type read from the bytes rather than from the caller.
import { open } from 'node:fs/promises';
import { fileTypeFromBuffer } from 'file-type';
import type { MediaKind } from '../engines/engine.js';
import { AppError } from '../errors.js';

const IMAGE_TYPES = {
  'image/jpeg': 'jpg',
  'image/png': 'png',
  'image/webp': 'webp',
  'image/gif': 'gif',
} as const;

export type ImageMimeType = keyof typeof IMAGE_TYPES;

export interface DetectedImage {
  mimeType: ImageMimeType;
  extension: string;
}

const DATA_URI = /^data:([\w.+-]+\/[\w.+-]+)?(;[\w-]+=[\w.-]+)*;base64,/i;
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** Decodes base64 (a `data:` URI prefix is allowed); 413 MEDIA_TOO_LARGE past maxBytes, 400 when it is not base64. */
export function decodeBase64Image(data: string, maxBytes: number): Buffer {
  const encoded = data.replace(DATA_URI, '').replace(/\s+/g, '');
  // Checked on the encoded length first, so an oversize image is refused before it is decoded.
  const padding = encoded.endsWith('==') ? 2 : encoded.endsWith('=') ? 1 : 0;
  if (Math.floor((encoded.length * 3) / 4) - padding > maxBytes) throw new AppError('MEDIA_TOO_LARGE');
  if (encoded.length === 0 || !BASE64.test(encoded)) {
    throw new AppError('INVALID_PAYLOAD', 'data: must be base64, optionally with a data: URI prefix');
  }
  return Buffer.from(encoded, encoded.includes('-') || encoded.includes('_') ? 'base64url' : 'base64');
}

/** The image type of the bytes: JPEG, PNG, WebP or GIF; anything else is 415, whatever the caller declared. */
export async function detectImage(bytes: Buffer): Promise<DetectedImage> {
  const type = await fileTypeFromBuffer(bytes);
  const mimeType = type?.mime;
  if (!mimeType || !(mimeType in IMAGE_TYPES)) throw new AppError('UNSUPPORTED_MEDIA_TYPE');
  const image = mimeType as ImageMimeType;
  return { mimeType: image, extension: IMAGE_TYPES[image] };
}

/** The largest file of each kind, in bytes. */
export type MediaLimits = Record<MediaKind, number>;

export interface DetectedMedia {
  mimeType: string;
  /** Without the dot; `bin` for a document of a type the bytes do not tell. */
  extension: string;
}

/** What a file's first bytes must be for each kind (WhatsApp's formats); documents take anything. */
const VIDEO_TYPES = new Set(['video/mp4', 'video/3gpp']);
/** What WhatsApp plays as audio: MP3, AAC/M4A, Ogg (Opus, Vorbis), AMR. */
const AUDIO_TYPES = new Set(['audio/mpeg', 'audio/aac', 'audio/mp4', 'audio/x-m4a', 'audio/ogg', 'audio/amr']);
/** A voice note is Ogg/Opus (what the phone records). */
const VOICE_TYPE = 'audio/ogg; codecs=opus';

/** How many first bytes of a file are read to tell its type (file-type needs a few KB; MP4 boxes a little more). */
export const SNIFF_BYTES = 64 * 1024;

/**
 * The type of a file of `kind`, read from its first bytes (`head`); 415 UNSUPPORTED_MEDIA_TYPE when they are not what
 * the kind takes, whatever the caller declared. A document of a type the bytes do not tell (plain text, CSV) takes the
 * declared type, or application/octet-stream.
 */
export async function detectMedia(
  kind: MediaKind,
  head: Buffer,
  options: { voice?: boolean | undefined; declaredType?: string | undefined } = {},
): Promise<DetectedMedia> {
  const type = await fileTypeFromBuffer(head);
  const refuse = (what: string) => new AppError('UNSUPPORTED_MEDIA_TYPE', `The bytes are not ${what}.`);
  switch (kind) {
    case 'image':
      return detectImage(head);
    case 'sticker':
      if (type?.mime !== 'image/webp') throw refuse('a WebP image (stickers are WebP)');
      return { mimeType: type.mime, extension: 'webp' };
    case 'video':
      if (!type || !VIDEO_TYPES.has(type.mime)) throw refuse('an MP4 video');
      return { mimeType: type.mime, extension: type.ext === '3gp' ? '3gp' : 'mp4' };
    case 'audio': {
      if (options.voice) {
        if (type?.mime !== VOICE_TYPE) throw refuse('Ogg/Opus audio (a voice note is Ogg/Opus)');
        return { mimeType: VOICE_TYPE, extension: 'ogg' };
      }
      const mime = type?.mime.split(';')[0] ?? '';
      if (!type || !AUDIO_TYPES.has(mime)) throw refuse('audio WhatsApp plays (MP3, AAC/M4A, Ogg, AMR)');
      return { mimeType: type.mime, extension: type.ext === 'opus' ? 'ogg' : type.ext };
    }
    case 'document': {
      if (type) return { mimeType: type.mime, extension: type.ext };
      const declared = options.declaredType?.trim().toLowerCase();
      return declared && MIME.test(declared)
        ? { mimeType: declared, extension: 'bin' }
        : { mimeType: 'application/octet-stream', extension: 'bin' };
    }
  }
}

const MIME = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/;

/** The first bytes of a file on disk. */
export async function readHead(path: string, bytes = SNIFF_BYTES): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(bytes);
    const { bytesRead } = await file.read(buffer, 0, bytes, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}

/** A file name a recipient may see: no folders, no control characters; null when nothing is left. */
export function safeFilename(name: string | undefined): string | null {
  if (!name) return null;
  const base = name.split(/[\\/]/).at(-1) ?? '';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
  const clean = base.replace(/[\u0000-\u001f\u007f]/g, '').trim();
  return clean === '' || clean === '.' || clean === '..' ? null : clean.slice(0, 255);
}
