// Pure translation of what Baileys 7 tells about LIDs and phone numbers outside messages into the port's pairs.
import type { Contact, LIDMapping } from 'baileys';
import type { IdentityPair } from '../engine.js';
import { addressesOf } from './to-inbound-message.js';

/** `lid-mapping.update` (and history sync's `lidPnMappings`): `{ lid, pn }`, each possibly with a device part. */
export function pairsFromMappings(mappings: readonly LIDMapping[]): IdentityPair[] {
  return mappings.flatMap(({ lid, pn }) => pair(lid, pn, null));
}

/** `contacts.upsert` / `contacts.update`: a contact names its LID and number when WhatsApp shared both. */
export function pairsFromContacts(contacts: readonly Partial<Contact>[]): IdentityPair[] {
  return contacts.flatMap((contact) => {
    const { phoneJid, lid } = addressesOf(contact.lid ?? contact.id, contact.phoneNumber ?? contact.id);
    return phoneJid && lid ? [{ lid, phoneJid, pushName: contact.notify || null }] : [];
  });
}

function pair(lid: string | undefined, pn: string | undefined, pushName: string | null): IdentityPair[] {
  const addresses = addressesOf(lid, pn);
  return addresses.phoneJid && addresses.lid ? [{ lid: addresses.lid, phoneJid: addresses.phoneJid, pushName }] : [];
}
