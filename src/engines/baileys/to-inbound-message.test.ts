import { readFileSync } from 'node:fs';
import type { BaileysEventMap, Contact, LIDMapping, WAMessage } from 'baileys';
import { describe, expect, it } from 'vitest';
import { pairsFromContacts, pairsFromMappings } from './to-identity-pairs.js';
import { toBaileysJid, toCanonicalJid, toCloseAction, toIdentity, toInboundMessage } from './to-inbound-message.js';

/** The first message of a recorded `messages.upsert` payload. */
function fixture(name: string): WAMessage {
  const upsert = JSON.parse(
    readFileSync(new URL(`./__fixtures__/${name}.json`, import.meta.url), 'utf8'),
  ) as BaileysEventMap['messages.upsert'];
  const [message] = upsert.messages;
  if (!message) throw new Error(`${name} has no message`);
  return message;
}

const context = { me: '6281234567890@c.us', groupName: null };

describe('toInboundMessage (baileys)', () => {
  it('maps a private text addressed by LID to the phone JID WhatsApp also gave', () => {
    expect(toInboundMessage(fixture('upsert-private-lid'), context)).toEqual({
      id: '3EB0C431C26A1916E07C',
      chatJid: '6289900000001@c.us',
      senderJid: '6289900000001@c.us',
      text: 'Halo, apa kabar?',
      type: 'text',
      isGroup: false,
      mentions: [],
      fromMe: false,
      timestamp: 1_764_000_000_000,
      pushName: 'Budi Santoso',
      chatName: 'Budi Santoso',
      quotedMessageId: null,
      media: null,
      senderPhoneJid: '6289900000001@c.us',
      senderLid: '210987654321098@lid',
      location: null,
    });
  });

  it('maps a voice note: type audio, its duration in seconds, the file metadata and never its bytes', () => {
    expect(toInboundMessage(fixture('upsert-voice-note'), context)).toMatchObject({
      id: '3A9F8E7D6C5B4A392817',
      type: 'audio',
      text: '',
      pushName: 'Rudi',
      media: { mimeType: 'audio/ogg; codecs=opus', size: 10_322, filename: null, durationSeconds: 7 },
      location: null,
    });
  });

  it('maps a location: coordinates in degrees, the place name and address', () => {
    expect(toInboundMessage(fixture('upsert-location'), context)).toMatchObject({
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

  it('reports the LID of a message addressed by phone number (remoteJidAlt), for the same person', () => {
    expect(toInboundMessage(fixture('upsert-private-pn'), context)).toMatchObject({
      chatJid: '6289900000001@c.us',
      senderJid: '6289900000001@c.us',
      text: 'ini saya lagi',
      senderPhoneJid: '6289900000001@c.us',
      senderLid: '210987654321098@lid',
    });
  });

  it('reports a LID sender without a number as a LID only', () => {
    const { remoteJidAlt: _alt, ...key } = fixture('upsert-private-lid').key;
    const message = toInboundMessage({ ...fixture('upsert-private-lid'), key }, context);
    expect(message).toMatchObject({
      chatJid: '210987654321098@lid',
      senderJid: '210987654321098@lid',
      senderPhoneJid: null,
      senderLid: '210987654321098@lid',
    });
  });

  it('maps a group message: the participant as sender, mentions canonical with LIDs kept, a Long timestamp', () => {
    const message = toInboundMessage(fixture('upsert-group-mentions'), { ...context, groupName: 'Tim Gudang' });
    expect(message).toMatchObject({
      chatJid: '120363025555555555@g.us',
      senderJid: '6289900000002@c.us',
      isGroup: true,
      text: '@6281234567890 @123456789012345 tolong dibantu',
      mentions: ['6281234567890@c.us', '123456789012345@lid'],
      timestamp: 1_764_000_100_000,
      chatName: 'Tim Gudang',
      senderPhoneJid: '6289900000002@c.us',
      senderLid: '111122223333444@lid',
    });
  });

  it('unwraps a disappearing image and takes its caption as the text', () => {
    expect(toInboundMessage(fixture('upsert-ephemeral-image'), context)).toMatchObject({
      chatJid: '6289900000005@c.us',
      type: 'image',
      text: 'foto struk',
      pushName: 'Ani',
      media: { mimeType: 'image/jpeg', size: 48_213, filename: null },
    });
  });

  it('reads the id of a quoted message and the metadata of a document, never its bytes', () => {
    const base = fixture('upsert-private-lid');
    const message = toInboundMessage(
      {
        ...base,
        message: {
          documentWithCaptionMessage: {
            message: {
              documentMessage: {
                mimetype: 'application/pdf',
                fileLength: 1_000,
                fileName: 'invoice.pdf',
                caption: 'the invoice',
                contextInfo: { stanzaId: 'QUOTED-1' },
              },
            },
          },
        },
      },
      context,
    );
    expect(message).toMatchObject({
      type: 'document',
      text: 'the invoice',
      quotedMessageId: 'QUOTED-1',
      media: { mimeType: 'application/pdf', size: 1_000, filename: 'invoice.pdf' },
    });
  });

  it('keeps our own protocol messages as they are, typed other: filtering is the inbound service’s job', () => {
    expect(toInboundMessage(fixture('upsert-own-revoke'), context)).toMatchObject({
      fromMe: true,
      senderJid: '6281234567890@c.us',
      type: 'other',
      text: '',
      pushName: null,
      senderPhoneJid: null,
      senderLid: null,
    });
  });
});

describe('LID and phone pairs outside messages (baileys)', () => {
  const json = (name: string): unknown =>
    JSON.parse(readFileSync(new URL(`./__fixtures__/${name}.json`, import.meta.url), 'utf8'));

  it('reads lid-mapping.update, dropping the device parts', () => {
    expect(pairsFromMappings([json('lid-mapping-update') as LIDMapping])).toEqual([
      { lid: '210987654321098@lid', phoneJid: '6289900000001@c.us', pushName: null },
    ]);
    expect(pairsFromMappings([{ lid: '210987654321098@lid', pn: '' }])).toEqual([]);
  });

  it('reads the contacts that name both a LID and a number, whichever is their id', () => {
    expect(pairsFromContacts(json('contacts-upsert') as Contact[])).toEqual([
      { lid: '311122223333444@lid', phoneJid: '6289900000007@c.us', pushName: 'Dewi' },
      { lid: '411122223333444@lid', phoneJid: '6289900000008@c.us', pushName: null },
    ]);
  });
});

describe('JIDs, identity and close reasons (baileys)', () => {
  it('maps user JIDs both ways and leaves groups and LIDs alone', () => {
    expect(toCanonicalJid('6281234567890:12@s.whatsapp.net')).toBe('6281234567890@c.us');
    expect(toBaileysJid('6281234567890@c.us')).toBe('6281234567890@s.whatsapp.net');
    expect(toBaileysJid('120363025555555555@g.us')).toBe('120363025555555555@g.us');
    expect(toBaileysJid('123456789012345@lid')).toBe('123456789012345@lid');
  });

  it('drops the device part of the account ids', () => {
    expect(toIdentity({ id: '6281234567890:7@s.whatsapp.net', lid: '998877:7@lid' })).toEqual({
      me: '6281234567890@c.us',
      lid: '998877@lid',
    });
    expect(() => toIdentity(undefined)).toThrow(/account/);
  });

  it('reads the DisconnectReason from a Boom: 515 restarts, 401 is logged out, anything else reconnects', () => {
    const boom = (statusCode: number) => Object.assign(new Error('x'), { output: { statusCode } });
    expect(toCloseAction(boom(515)).action).toBe('restart');
    expect(toCloseAction(boom(401)).action).toBe('logged_out');
    expect(toCloseAction(boom(408))).toEqual({ action: 'reconnect', statusCode: 408, reason: 'x (408)' });
    expect(toCloseAction(new Error('socket hang up'))).toEqual({
      action: 'reconnect',
      statusCode: null,
      reason: 'socket hang up',
    });
    expect(toCloseAction(undefined).action).toBe('reconnect');
  });
});
