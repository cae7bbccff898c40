// The smallest files of each kind the media route takes that file-type recognizes, for tests.

/** An Ogg page whose packet starts with `head` (the first page of an Ogg stream; the CRC is not checked). */
function oggPage(head: string): Buffer {
  const packet = Buffer.concat([Buffer.from(head), Buffer.alloc(11)]);
  const header = Buffer.concat([
    Buffer.from('OggS'),
    Buffer.from([0, 2]), // version, first page
    Buffer.alloc(8), // granule position
    Buffer.from([1, 0, 0, 0]), // serial
    Buffer.alloc(4), // page sequence
    Buffer.alloc(4), // CRC
    Buffer.from([1, packet.length]), // one segment
  ]);
  return Buffer.concat([header, packet]);
}

/** An MP4 file's ftyp box (brand mp42). */
const mp4 = Buffer.concat([
  Buffer.from([0, 0, 0, 0x18]),
  Buffer.from('ftypmp42'),
  Buffer.from([0, 0, 0, 0]),
  Buffer.from('mp42isom'),
  Buffer.alloc(64),
]);

export const FILES = {
  pdf: Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n', 'latin1'),
  /** Ogg/Opus: what a voice note is. */
  opus: oggPage('OpusHead'),
  /** Ogg/Vorbis: audio, but not a voice note. */
  vorbis: oggPage('\x01vorbis'),
  /** An MP3: one MPEG-1 Layer III frame. */
  mp3: Buffer.concat([Buffer.from([0xff, 0xfb, 0x90, 0x00]), Buffer.alloc(413)]),
  mp4,
  webp: Buffer.concat([Buffer.from('RIFF'), Buffer.from([0x24, 0, 0, 0]), Buffer.from('WEBPVP8 '), Buffer.alloc(32)]),
  /** Plain text: no magic bytes, so a document of it takes the declared type. */
  csv: Buffer.from('name,phone\nBudi,6281234567890\n'),
};
