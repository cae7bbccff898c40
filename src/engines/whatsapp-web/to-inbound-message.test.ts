import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { toCanonicalJid, toIdentity, toInboundMessage } from './to-inbound-message.js';
import type { WwebMessageData } from './whatsapp-web.types.js';

/** A recorded Message as JSON.stringify wrote it; `rawData` is the class's getter for `_data`. */
function fixture(name: string): WwebMessageData {
  const json = JSON.parse(
    readFileSync(new URL(`./__fixtures__/${name}.json`, import.meta.url), 'utf8'),
  ) as WwebMessageData & { _data: object };
  return { ...json, rawData: json._data };
}

const noContext = { chatName: null, contactPushName: null };

describe('toInboundMessage (whatsapp-web)', () => {
  it('maps a private text message, taking the push name the message carried', () => {
    expect(toInboundMessage(fixture('message-private-text'), { chatName: 'Budi', contactPushName: 'Other' })).toEqual({
      id: 'false_6289900000001@c.us_3EB0C431C26A1916E07C',
      chatJid: '6289900000001@c.us',
      senderJid: '6289900000001@c.us',
      text: 'Halo, apa kabar?',
      type: 'text',
      isGroup: false,
      mentions: [],
      fromMe: false,
      timestamp: 1_764_000_000_000,
      pushName: 'Budi Santoso',
      chatName: 'Budi',
      quotedMessageId: null,
      media: null,
      senderPhoneJid: '6289900000001@c.us',
      senderLid: null,
      location: null,
    });
  });

  it('maps a voice note (ptt): type audio, its duration in seconds, the file metadata and never its bytes', () => {
    expect(toInboundMessage(fixture('message-voice-note'), noContext)).toMatchObject({
      id: 'false_6289900000006@c.us_3A9F8E7D6C5B4A392817',
      type: 'audio',
      text: '',
      pushName: 'Rudi',
      media: { mimeType: 'audio/ogg; codecs=opus', size: 10_322, filename: null, durationSeconds: 7 },
      location: null,
    });
  });

  it('maps a location: coordinates, the place name and address, and no text (its body is a thumbnail)', () => {
    expect(toInboundMessage(fixture('message-location'), noContext)).toMatchObject({
      type: 'location',
      text: '',
      media: null,
      location: {
        latitude: -6.175392,
        longitude: 106.827153,
        name: 'Monumen Nasional',
        address: 'Gambir, Jakarta Pusat',
      },
    });
  });

  it('maps a group message: the chat is the group, the sender its author, mentions keep LIDs', () => {
    const message = toInboundMessage(fixture('message-group-mentions'), {
      chatName: 'Tim Gudang',
      contactPushName: null,
    });
    expect(message).toMatchObject({
      chatJid: '120363025555555555@g.us',
      senderJid: '6289900000002@c.us',
      isGroup: true,
      mentions: ['6281234567890@c.us', '123456789012345@lid'],
      pushName: 'Sari',
      chatName: 'Tim Gudang',
      senderPhoneJid: '6289900000002@c.us',
      senderLid: null,
    });
  });

  it('maps an image from a LID sender: caption as text, the contact name when the message has none', () => {
    const message = toInboundMessage(fixture('message-lid-image'), { chatName: null, contactPushName: 'Ani' });
    expect(message).toMatchObject({
      chatJid: '210987654321098@lid',
      senderJid: '210987654321098@lid',
      type: 'image',
      text: 'foto struk',
      pushName: 'Ani',
      media: { mimeType: 'image/jpeg', size: null, filename: null },
      senderPhoneJid: null,
      senderLid: '210987654321098@lid',
    });
  });

  it("takes a LID sender's number from their contact, whose id whatsapp-web.js gives as the phone JID", () => {
    const contact = JSON.parse(
      readFileSync(new URL('./__fixtures__/contact-lid-with-phone.json', import.meta.url), 'utf8'),
    ) as { id: { _serialized: string }; pushname: string };
    const message = toInboundMessage(fixture('message-lid-image'), {
      chatName: null,
      contactPushName: contact.pushname,
      contactId: contact.id._serialized,
    });
    expect(message).toMatchObject({
      chatJid: '210987654321098@lid',
      senderJid: '210987654321098@lid',
      senderPhoneJid: '6289900000001@c.us',
      senderLid: '210987654321098@lid',
    });
  });

  it('reads the id of a quoted message and the size and file name of a document', () => {
    const base = fixture('message-lid-image');
    const rawData = { ...base.rawData, quotedStanzaID: 'QUOTED-1', size: 1_000, filename: 'invoice.pdf' };
    expect(toInboundMessage({ ...base, rawData }, noContext)).toMatchObject({
      quotedMessageId: 'QUOTED-1',
      media: { mimeType: 'image/jpeg', size: 1_000, filename: 'invoice.pdf' },
    });
    expect(toInboundMessage({ ...base, hasMedia: false }, noContext).media).toBeNull();
  });

  it('keeps status updates as they are: filtering is the inbound service’s job', () => {
    const message = toInboundMessage(fixture('message-status'), noContext);
    expect(message).toMatchObject({ chatJid: 'status@broadcast', senderJid: '6289900000004@c.us', pushName: null });
  });

  it('reads mentions that some WhatsApp Web builds serialize as Wid objects', () => {
    const base = fixture('message-group-mentions');
    const widMentions = [{ server: 'lid', user: '123456789012345', _serialized: '123456789012345@lid' }];
    const message = toInboundMessage({ ...base, mentionedIds: widMentions as unknown as string[] }, noContext);
    expect(message.mentions).toEqual(['123456789012345@lid']);
  });

  it('maps voice notes to audio and unknown kinds to other', () => {
    const base = fixture('message-private-text');
    expect(toInboundMessage({ ...base, type: 'ptt' as WwebMessageData['type'] }, noContext).type).toBe('audio');
    expect(toInboundMessage({ ...base, type: 'poll_creation' as WwebMessageData['type'] }, noContext).type).toBe(
      'other',
    );
  });
});

describe('JIDs and identity (whatsapp-web)', () => {
  it('folds device suffixes and the s.whatsapp.net server into the canonical form', () => {
    expect(toCanonicalJid('6281234567890:12@c.us')).toBe('6281234567890@c.us');
    expect(toCanonicalJid('6281234567890@s.whatsapp.net')).toBe('6281234567890@c.us');
    expect(toCanonicalJid('120363025555555555@g.us')).toBe('120363025555555555@g.us');
  });

  it('takes the phone JID as me and the LID when known; a LID-only account is its own LID', () => {
    expect(toIdentity({ _serialized: '6281234567890@c.us' }, '1234@lid')).toEqual({
      me: '6281234567890@c.us',
      lid: '1234@lid',
    });
    expect(toIdentity({ _serialized: '555@lid' }, null)).toEqual({ me: '555@lid', lid: '555@lid' });
    expect(() => toIdentity(undefined, null)).toThrow(/wid/);
  });
});
