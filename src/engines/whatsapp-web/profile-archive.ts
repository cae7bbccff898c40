// The part of a Chromium profile that holds a WhatsApp Web login, packed into one buffer for the database, and back.
import { createHash } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';

/** What WhatsApp Web needs to resume, relative to the profile: the selection whatsapp-web.js's RemoteAuth keeps. */
export const LOGIN_PATHS = ['Default/IndexedDB', 'Default/Local Storage'] as const;

/** The format's name and version: a gzip of this, then (name length, name, size, bytes) per file, lengths u32 BE. */
const MAGIC = Buffer.from('WAMT-PROFILE-1\n');
/** Far above any real profile: a corrupt or hostile row must not fill the memory. */
const MAX_UNPACKED_BYTES = 1024 ** 3;
/** A file deleted while it was being read (LevelDB compacts while the browser runs): the pack starts again. */
const PACK_ATTEMPTS = 3;

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

export interface PackedProfile {
  /** What the database stores. */
  data: Buffer;
  /** Of the files' names and contents: equal digests mean nothing changed. */
  digest: string;
  files: number;
}

/** Packs the login's files of a profile; null when it has none (no login was ever stored there). */
export async function packProfile(profileDir: string): Promise<PackedProfile | null> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await packOnce(profileDir);
    } catch (error) {
      if (!isMissing(error) || attempt >= PACK_ATTEMPTS) throw error;
    }
  }
}

async function packOnce(profileDir: string): Promise<PackedProfile | null> {
  const names: string[] = [];
  for (const root of LOGIN_PATHS) names.push(...(await listFiles(profileDir, root)));
  if (names.length === 0) return null;
  names.sort();
  const parts: Buffer[] = [MAGIC];
  for (const name of names) {
    const content = await readFile(path.join(profileDir, name));
    const nameBytes = Buffer.from(name, 'utf8');
    parts.push(u32(nameBytes.length), nameBytes, u32(content.length), content);
  }
  const raw = Buffer.concat(parts);
  return { data: await gzipAsync(raw), digest: digestOf(raw), files: names.length };
}

/** Writes the packed files into the profile directory (files 0600, folders 0700); returns the pack's digest. */
export async function unpackProfile(data: Buffer, profileDir: string): Promise<string> {
  const raw = await gunzipAsync(data, { maxOutputLength: MAX_UNPACKED_BYTES });
  if (!raw.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error('not a packed whatsapp-web profile');
  const root = path.resolve(profileDir);
  let offset = MAGIC.length;
  const take = (length: number) => {
    if (offset + length > raw.length) throw new Error('packed whatsapp-web profile is truncated');
    const slice = raw.subarray(offset, offset + length);
    offset += length;
    return slice;
  };
  await mkdir(root, { recursive: true, mode: 0o700 });
  while (offset < raw.length) {
    const name = take(take(4).readUInt32BE(0)).toString('utf8');
    const content = take(take(4).readUInt32BE(0));
    const target = path.resolve(root, name);
    // Only the login's folders, and nothing outside the profile, whatever the row holds.
    if (!LOGIN_PATHS.some((login) => target.startsWith(path.join(root, login) + path.sep))) {
      throw new Error(`packed whatsapp-web profile names a file outside the login: ${JSON.stringify(name)}`);
    }
    await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
    await writeFile(target, content, { mode: 0o600 });
  }
  return digestOf(raw);
}

/** The regular files under `profileDir/relative`, as profile-relative names with `/`; none when it is missing. */
async function listFiles(profileDir: string, relative: string): Promise<string[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(path.join(profileDir, relative), { withFileTypes: true });
  } catch (error) {
    if (isMissing(error)) return [];
    throw error;
  }
  const found: string[] = [];
  for (const entry of entries) {
    const name = `${relative}/${entry.name}`;
    if (entry.isDirectory()) found.push(...(await listFiles(profileDir, name)));
    else if (entry.isFile()) found.push(name);
  }
  return found;
}

function u32(value: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value, 0);
  return bytes;
}

function digestOf(raw: Buffer): string {
  return createHash('sha256').update(raw).digest('hex');
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}
