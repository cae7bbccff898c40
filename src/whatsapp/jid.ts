// Phone numbers and JIDs: every accepted form in, one canonical JID out (`@c.us`, `@g.us`, `@lid`).
import { AppError } from '../errors.js';

const GROUP_ID = /^\d{5,}(-\d+)?$/;
const LID = /^\d{5,20}$/;
// A country code never starts with 0, so an international number cannot either (`+0812…` is a typo, not a number).
const PHONE = /^[1-9]\d{7,14}$/;
const SEPARATORS = /[\s\-.()[\]]/g;

export type JidKind = 'user' | 'group' | 'lid';

/** The canonical JID for `to`, or null when it is not a phone number, JID, group JID or LID. */
export function parseRecipient(input: string, defaultCountryCode: string): string | null {
  const value = input.trim();
  const at = value.indexOf('@');
  if (at >= 0) {
    const local = value.slice(0, at).split(':')[0] ?? '';
    const domain = value.slice(at + 1).toLowerCase();
    if (domain === 'c.us' || domain === 's.whatsapp.net') return PHONE.test(local) ? `${local}@c.us` : null;
    if (domain === 'g.us') return GROUP_ID.test(local) ? `${local}@g.us` : null;
    if (domain === 'lid') return LID.test(local) ? `${local}@lid` : null;
    return null;
  }
  const digits = phoneDigits(value, defaultCountryCode);
  return digits === null ? null : `${digits}@c.us`;
}

/** Like parseRecipient, but throws 400 INVALID_RECIPIENT naming the field. */
export function normalizeRecipient(input: string, defaultCountryCode: string, field = 'to'): string {
  const jid = parseRecipient(input, defaultCountryCode);
  if (jid === null) {
    throw new AppError('INVALID_RECIPIENT', `${field} must be a phone number (8 to 15 digits), a JID or a group JID`);
  }
  return jid;
}

/** The international digits of a phone number written by a person, or null. */
export function phoneDigits(input: string, defaultCountryCode: string): string | null {
  let value = input.trim().replace(SEPARATORS, '');
  if (value.startsWith('+')) value = value.slice(1);
  else if (value.startsWith('00')) value = value.slice(2);
  else if (value.startsWith('0')) value = defaultCountryCode + value.slice(1);
  return PHONE.test(value) ? value : null;
}

export function jidKind(jid: string): JidKind | null {
  if (jid.endsWith('@c.us')) return 'user';
  if (jid.endsWith('@g.us')) return 'group';
  if (jid.endsWith('@lid')) return 'lid';
  return null;
}

/** The part before the `@` (and before a `:device` suffix). */
export function jidUser(jid: string): string {
  return (jid.split('@')[0] ?? '').split(':')[0] ?? '';
}
