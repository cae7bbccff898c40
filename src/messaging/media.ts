// Image input: base64 decoding under a size limit, and the type read from the bytes rather than from the caller.
import { fileTypeFromBuffer } from 'file-type';
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
