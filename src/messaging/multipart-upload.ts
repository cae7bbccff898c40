// A multipart/form-data send: its form fields, and its one file streamed to disk (hashed on the way, cut off at a limit).
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';
import { PRIVATE_DIR_MODE } from '../private-files.js';
import type { UploadedFile } from './messaging.service.js';
import { UPLOAD_PREFIX } from './preview-store.js';

/** Form fields that may repeat (each value one entry), and those that must not. */
const LIST_FIELDS = new Set(['mentions']);

/**
 * Reads a multipart body: its fields, and its one file streamed to a new file in `dir` (hashed on the way), cut off
 * with 413 past maxBytes. `created` is told the file's path before a byte is written, so that it is removed whatever
 * happens next.
 */
export async function receiveUpload(
  request: FastifyRequest,
  dir: string,
  maxBytes: number,
  created: (path: string) => void,
): Promise<{ fields: Record<string, unknown>; file: UploadedFile | undefined }> {
  const fields: Record<string, unknown> = {};
  let file: UploadedFile | undefined;
  let target: string | undefined;
  try {
    for await (const part of request.parts()) {
      if (part.type === 'field') {
        const value = typeof part.value === 'string' ? part.value : String(part.value);
        if (LIST_FIELDS.has(part.fieldname)) {
          const list = fields[part.fieldname];
          fields[part.fieldname] = Array.isArray(list) ? [...list, value] : [value];
        } else if (part.fieldname in fields) {
          throw new AppError('INVALID_PAYLOAD', `${part.fieldname}: given twice`);
        } else fields[part.fieldname] = value;
        continue;
      }
      if (file) throw new AppError('INVALID_PAYLOAD', 'one file per request');
      await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
      target = path.join(dir, `${UPLOAD_PREFIX}${randomUUID()}`);
      created(target);
      const sha = createHash('sha256');
      let size = 0;
      const count = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          size += chunk.length;
          sha.update(chunk);
          callback(null, chunk);
        },
      });
      await pipeline(part.file, count, createWriteStream(target, { flags: 'wx', mode: 0o600 }));
      if (part.file.truncated || size > maxBytes) throw new AppError('MEDIA_TOO_LARGE');
      file = { path: target, size, filename: part.filename || null, sha256: sha.digest('hex') };
    }
  } catch (err) {
    // Not left for the request's end: a client gone before it was told of the file leaves nobody to remove it.
    if (target !== undefined) await rm(target, { force: true });
    if (err instanceof Error && 'code' in err && err.code === 'FST_REQ_FILE_TOO_LARGE') {
      throw new AppError('MEDIA_TOO_LARGE');
    }
    if (err instanceof Error && 'code' in err && typeof err.code === 'string' && err.code.startsWith('FST_')) {
      throw new AppError('INVALID_PAYLOAD', `multipart: ${err.message}`);
    }
    throw err;
  }
  if (!file) throw new AppError('INVALID_PAYLOAD', 'multipart: the file part is missing');
  return { fields, file };
}
