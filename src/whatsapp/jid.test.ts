import { describe, expect, it } from 'vitest';
import { AppError } from '../errors.js';
import { jidKind, jidUser, normalizeRecipient, parseRecipient, phoneDigits } from './jid.js';

describe('parseRecipient', () => {
  const accepted: Array<[input: string, jid: string]> = [
    // 08… : the leading 0 becomes the default country code
    ['081234567890', '6281234567890@c.us'],
    ['0812-3456-7890', '6281234567890@c.us'],
    ['0812 3456 7890', '6281234567890@c.us'],
    ['(0812) 3456.7890', '6281234567890@c.us'],
    ['[0812] 3456 7890', '6281234567890@c.us'],
    // +62… and 62…
    ['+6281234567890', '6281234567890@c.us'],
    ['+62 812-3456-7890', '6281234567890@c.us'],
    ['+62 (812) 3456.7890', '6281234567890@c.us'],
    ['6281234567890', '6281234567890@c.us'],
    ['62.812.3456.7890', '6281234567890@c.us'],
    ['  6281234567890\t', '6281234567890@c.us'],
    ['006281234567890', '6281234567890@c.us'],
    // the 8 and 15 digit bounds
    ['12345678', '12345678@c.us'],
    ['123456789012345', '123456789012345@c.us'],
    // JID suffixes
    ['6281234567890@c.us', '6281234567890@c.us'],
    ['6281234567890@s.whatsapp.net', '6281234567890@c.us'],
    ['6281234567890:12@s.whatsapp.net', '6281234567890@c.us'],
    ['6281234567890@C.US', '6281234567890@c.us'],
    ['120363025246125888@g.us', '120363025246125888@g.us'],
    ['6281234567890-1600000000@g.us', '6281234567890-1600000000@g.us'],
    ['123456789012345@lid', '123456789012345@lid'],
    ['123456789012345:3@lid', '123456789012345@lid'],
  ];
  it.each(accepted)('accepts %j as %s', (input, jid) => {
    expect(parseRecipient(input, '62')).toBe(jid);
  });

  const rejected: string[] = [
    '',
    '   ',
    'hello',
    '0812abc4567',
    '1234567', // 7 digits
    '1234567890123456', // 16 digits
    '+', // sign only
    '0',
    '+0812345678', // an international number cannot start with 0
    '0812345678901234567', // too long once the country code is added
    '62812-3456_7890', // underscores are not separators
    '62812345678/9',
    '@c.us',
    '123@c.us',
    '+6281234567890@c.us', // JIDs are machine-written: no sign, no separators
    '62 812 3456 7890@c.us',
    '6281234567890@example.com',
    '6281234567890@',
    'abc@g.us',
    '@g.us',
    '12a@lid',
    'status@broadcast',
    '123@newsletter',
    '6281234567890@c.us@g.us',
  ];
  it.each(rejected)('rejects %j', (input) => {
    expect(parseRecipient(input, '62')).toBeNull();
  });

  it('uses the configured default country code for a leading 0', () => {
    expect(parseRecipient('0812 3456 7890', '1')).toBe('181234567890@c.us');
    expect(parseRecipient('07911 123456', '44')).toBe('447911123456@c.us');
    expect(parseRecipient('+6281234567890', '44')).toBe('6281234567890@c.us');
  });
});

describe('normalizeRecipient', () => {
  it('returns the canonical JID', () => {
    expect(normalizeRecipient('0812-3456-7890', '62')).toBe('6281234567890@c.us');
  });

  it('throws INVALID_RECIPIENT naming the field', () => {
    const caught = (() => {
      try {
        normalizeRecipient('not a number', '62', 'session_id');
      } catch (err) {
        return err;
      }
      return null;
    })();
    expect(caught).toBeInstanceOf(AppError);
    expect((caught as AppError).code).toBe('INVALID_RECIPIENT');
    expect((caught as AppError).status).toBe(400);
    expect((caught as AppError).message).toContain('session_id');
  });
});

describe('phoneDigits', () => {
  it.each([
    ['+62 812-3456-7890', '6281234567890'],
    ['0812.3456.7890', '6281234567890'],
    ['(62) 812 3456 7890', '6281234567890'],
  ])('%j → %s', (input, digits) => {
    expect(phoneDigits(input, '62')).toBe(digits);
  });

  it.each(['6281234567890@c.us', 'x', '+0'])('rejects %j', (input) => {
    expect(phoneDigits(input, '62')).toBeNull();
  });
});

describe('jidKind and jidUser', () => {
  it.each([
    ['6281234567890@c.us', 'user', '6281234567890'],
    ['120363025246125888@g.us', 'group', '120363025246125888'],
    ['123456789012345@lid', 'lid', '123456789012345'],
    ['6281234567890:4@s.whatsapp.net', null, '6281234567890'],
    ['status@broadcast', null, 'status'],
  ] as const)('%s is %s with user %s', (jid, kind, user) => {
    expect(jidKind(jid)).toBe(kind);
    expect(jidUser(jid)).toBe(user);
  });
});
