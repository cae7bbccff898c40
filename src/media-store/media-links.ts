// Signed, expiring links to stored files: HMAC-SHA256 over the id and the expiry, checked in constant time.
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

export interface MediaLinkCheck {
  id: string;
  /** Seconds since the epoch, as the link's `expires` carries it. */
  expires: number;
  sig: string;
}

export class MediaLinks {
  private readonly key: Buffer;

  /**
   * `secret`: shared by every member (the admin key, which members already agree on). The signing key is derived from
   * it, so a link's signature says nothing about the secret itself.
   */
  constructor(
    secret: string,
    private readonly baseUrl: string | undefined,
  ) {
    this.key = Buffer.from(hkdfSync('sha256', secret, 'wamt-media-links', 'media link v1', 32));
  }

  /** The link for a stored file, valid until `expiresAtMs`; null when APP_BASE_URL is unset (nowhere to point). */
  url(id: string, expiresAtMs: number): string | null {
    if (!this.baseUrl) return null;
    const expires = Math.floor(expiresAtMs / 1000);
    return `${this.baseUrl}/media/${encodeURIComponent(id)}?expires=${expires}&sig=${this.sign(id, expires)}`;
  }

  /** Whether the signature is this service's for the id and expiry, and the expiry is still ahead of `nowMs`. */
  verify({ id, expires, sig }: MediaLinkCheck, nowMs: number): boolean {
    const expected = Buffer.from(this.sign(id, expires));
    const given = Buffer.from(sig);
    const genuine = given.length === expected.length && timingSafeEqual(given, expected);
    return genuine && expires * 1000 > nowMs;
  }

  private sign(id: string, expires: number): string {
    return createHmac('sha256', this.key).update(`${id}\n${expires}`).digest('base64url');
  }
}
