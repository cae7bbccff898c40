import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { packProfile, unpackProfile } from './profile-archive.js';

describe('profile archive', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'wamt-profile-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  async function put(profile: string, name: string, content: string) {
    await mkdir(path.dirname(path.join(profile, name)), { recursive: true });
    await writeFile(path.join(profile, name), content);
  }

  it("packs the login's folders only, and unpacks them as they were, private to the service's user", async () => {
    const from = path.join(dir, 'from');
    await put(from, 'Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/000003.log', 'keys');
    await put(from, 'Default/Local Storage/leveldb/CURRENT', 'MANIFEST-000001\n');
    await put(from, 'Default/Cache/Cache_Data/data_0', 'a cache');
    await put(from, 'Local State', '{}');
    const packed = await packProfile(from);
    expect(packed?.files).toBe(2);
    const to = path.join(dir, 'to');
    const digest = await unpackProfile(packed?.data ?? Buffer.alloc(0), to);
    expect(digest).toBe(packed?.digest);
    const log = path.join(to, 'Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/000003.log');
    expect(await readFile(log, 'utf8')).toBe('keys');
    expect((await stat(log)).mode & 0o777).toBe(0o600);
    expect((await stat(path.join(to, 'Default/IndexedDB'))).mode & 0o777).toBe(0o700);
    expect(await readFile(path.join(to, 'Default/Local Storage/leveldb/CURRENT'), 'utf8')).toBe('MANIFEST-000001\n');
    await expect(stat(path.join(to, 'Default/Cache'))).rejects.toThrow(/ENOENT/);
    await expect(stat(path.join(to, 'Local State'))).rejects.toThrow(/ENOENT/);
  });

  it('gives the same digest for the same files, another when one changes, and nothing for a profile without a login', async () => {
    const profile = path.join(dir, 'p');
    expect(await packProfile(profile)).toBeNull();
    await put(profile, 'Default/Cache/x', 'only a cache');
    expect(await packProfile(profile)).toBeNull();
    await put(profile, 'Default/Local Storage/leveldb/000005.ldb', 'one');
    const first = await packProfile(profile);
    expect((await packProfile(profile))?.digest).toBe(first?.digest);
    await put(profile, 'Default/Local Storage/leveldb/000005.ldb', 'two');
    expect((await packProfile(profile))?.digest).not.toBe(first?.digest);
  });

  it('refuses a pack that names a file outside the login, and writes nothing there', async () => {
    const name = Buffer.from('Default/IndexedDB/../../../../escaped');
    const content = Buffer.from('x');
    const length = (value: number) => {
      const bytes = Buffer.alloc(4);
      bytes.writeUInt32BE(value, 0);
      return bytes;
    };
    const raw = Buffer.concat([
      Buffer.from('WAMT-PROFILE-1\n'),
      length(name.length),
      name,
      length(content.length),
      content,
    ]);
    const hostile = await promisify(gzip)(raw);
    await expect(unpackProfile(hostile, path.join(dir, 'a', 'b'))).rejects.toThrow(/outside the login/);
    await expect(stat(path.join(dir, 'escaped'))).rejects.toThrow(/ENOENT/);
    await expect(unpackProfile(await promisify(gzip)(Buffer.from('something else')), dir)).rejects.toThrow(
      /not a packed/,
    );
  });
});
