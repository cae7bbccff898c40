import { describe, expect, it } from 'vitest';
import { MediaLinks } from './media-links.js';

const SECRET = 'an-admin-key-of-some-length';
const NOW = Date.UTC(2026, 5, 1);

function parts(url: string | null) {
  const parsed = new URL(url ?? '');
  return {
    id: parsed.pathname.split('/').at(-1) ?? '',
    expires: Number(parsed.searchParams.get('expires')),
    sig: parsed.searchParams.get('sig') ?? '',
  };
}

describe('MediaLinks', () => {
  const links = new MediaLinks(SECRET, 'https://wa.example.com');

  it('signs a link that verifies until its expiry, in seconds', () => {
    const url = links.url('abc123', NOW + 60_000);
    expect(url).toMatch(/^https:\/\/wa\.example\.com\/media\/abc123\?expires=\d+&sig=[\w-]{43}$/);
    const check = parts(url);
    expect(check.expires).toBe((NOW + 60_000) / 1000);
    expect(links.verify(check, NOW)).toBe(true);
    expect(links.verify(check, NOW + 59_999)).toBe(true);
    expect(links.verify(check, NOW + 60_000)).toBe(false);
  });

  it('refuses another id, another expiry, a changed or truncated signature, and another secret', () => {
    const check = parts(links.url('abc123', NOW + 60_000));
    expect(links.verify({ ...check, id: 'abc124' }, NOW)).toBe(false);
    expect(links.verify({ ...check, expires: check.expires + 1 }, NOW)).toBe(false);
    expect(links.verify({ ...check, sig: check.sig.slice(0, -1) }, NOW)).toBe(false);
    expect(
      links.verify({ ...check, sig: `${check.sig.slice(0, -1)}${check.sig.endsWith('A') ? 'B' : 'A'}` }, NOW),
    ).toBe(false);
    expect(new MediaLinks(`${SECRET}x`, undefined).verify(check, NOW)).toBe(false);
    // Every member (same secret) verifies what another signed.
    expect(new MediaLinks(SECRET, 'https://other.example.com').verify(check, NOW)).toBe(true);
  });

  it('makes no link without APP_BASE_URL', () => {
    expect(new MediaLinks(SECRET, undefined).url('abc123', NOW)).toBeNull();
  });
});
