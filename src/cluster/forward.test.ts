import { describe, expect, it } from 'vitest';
import { ownerTarget } from './forward.js';

describe('ownerTarget', () => {
  const owner = 'http://10.0.0.7:3000';

  it("keeps the path and query asked for, on the owner's address", () => {
    expect(ownerTarget(owner, '/sessions/a1/qr?waitForQr=true').href).toBe(
      'http://10.0.0.7:3000/sessions/a1/qr?waitForQr=true',
    );
  });

  it('never goes to a host the request line or the path names', () => {
    for (const asked of [
      'http://evil.example:8080/sessions/a1/qr',
      '//evil.example/sessions/a1/qr',
      '/\\evil.example/sessions/a1/qr',
      'http://x//evil.example/sessions/a1',
    ]) {
      expect(ownerTarget(owner, asked).host, asked).toBe('10.0.0.7:3000');
    }
  });
});
