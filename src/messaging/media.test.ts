import { describe, expect, it } from 'vitest';
import { IMAGES } from './__fixtures__/images.js';
import { decodeBase64Image, detectImage } from './media.js';

describe('detectImage', () => {
  it.each([
    ['png', 'image/png', 'png'],
    ['gif', 'image/gif', 'gif'],
    ['jpeg', 'image/jpeg', 'jpg'],
    ['webp', 'image/webp', 'webp'],
  ] as const)('reads %s from the bytes', async (name, mimeType, extension) => {
    expect(await detectImage(IMAGES[name])).toEqual({ mimeType, extension });
  });

  it.each([
    ['text', Buffer.from('hello, I am not a JPEG')],
    ['PDF', Buffer.from('%PDF-1.7\n%âãÏÓ\n1 0 obj\n<<>>\nendobj\n')],
    ['empty', Buffer.alloc(0)],
    ['ZIP', Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0, 0, 0, 0, 0])],
  ])('refuses %s with 415', async (_name, bytes) => {
    await expect(detectImage(bytes)).rejects.toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE', status: 415 });
  });
});

describe('decodeBase64Image', () => {
  const b64 = IMAGES.png.toString('base64');

  it('decodes plain base64, a data: URI, line breaks and base64url', () => {
    expect(decodeBase64Image(b64, 1024)).toEqual(IMAGES.png);
    expect(decodeBase64Image(`data:image/png;base64,${b64}`, 1024)).toEqual(IMAGES.png);
    expect(decodeBase64Image(`data:;base64,${b64}`, 1024)).toEqual(IMAGES.png);
    expect(decodeBase64Image(`${b64.slice(0, 20)}\n${b64.slice(20)}`, 1024)).toEqual(IMAGES.png);
    expect(decodeBase64Image(IMAGES.png.toString('base64url'), 1024)).toEqual(IMAGES.png);
  });

  it('refuses more than maxBytes with 413, before decoding', () => {
    const big = Buffer.alloc(2_000).toString('base64');
    expect(() => decodeBase64Image(big, 1_999)).toThrow(expect.objectContaining({ code: 'MEDIA_TOO_LARGE' }));
    expect(decodeBase64Image(big, 2_000)).toHaveLength(2_000);
  });

  it.each(['!!!not base64!!!', '', 'data:image/png;base64,'])('refuses %j with 400', (input) => {
    expect(() => decodeBase64Image(input, 1024)).toThrow(expect.objectContaining({ code: 'INVALID_PAYLOAD' }));
  });
});
