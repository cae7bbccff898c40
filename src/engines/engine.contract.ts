// The behaviour every engine owes the services, as one suite that each adapter runs against its own harness.
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ACK_STATUSES,
  type AckStatus,
  type Engine,
  type EngineSession,
  type EngineSessionEvents,
  type InboundMessage,
  type MessageAck,
  RecipientRejectedError,
} from './engine.js';
import type { SandboxSentEntry } from './sandbox/sandbox.engine.js';

/** A message as the phone on the other side sends it; JIDs are canonical and the harness translates them. */
export interface ContractInbound {
  id: string;
  from: string;
  /** A group to send it in; absent for a private chat. */
  group?: string;
  text: string;
  mentions?: string[];
  pushName?: string;
  /**
   * The sender's LID (`<id>@lid`): WhatsApp addresses the message by it, and tells the engine that `from` is the
   * number behind it, as the library reports (Baileys: `…Alt` keys; whatsapp-web.js: the contact's id).
   */
  fromLid?: string;
  /** Seconds since the epoch, as WhatsApp counts. */
  timestampSeconds: number;
  /** A file sent with the message (`text` is then its caption). */
  media?: ContractMedia;
  /** A shared location (the message is then of type location). */
  location?: { latitude: number; longitude: number; name: string };
}

/** A file as the phone sends it; an `audio` is a voice note. */
export interface ContractMedia {
  kind: 'image' | 'audio' | 'document';
  data: Buffer;
  mimeType: string;
  filename?: string;
  durationSeconds?: number;
}

/**
 * What the harness saw the engine hand to WhatsApp, translated back to canonical JIDs: the fields of the sandbox's
 * sent log, which records every kind the same way, less what only the sandbox knows (its ids and times).
 */
export type ContractSent = Omit<SandboxSentEntry, 'messageId' | 'at' | 'chat'>;

export interface EngineHarness {
  engine: Engine;
  /** The phone scans the QR code the agent's session shows (or accepts its pairing code). */
  scan(agentId: string, phone: string): Promise<void>;
  deliver(agentId: string, message: ContractInbound): Promise<void>;
  /** The connection drops: the network (loggedOut false) or the phone unlinking the device (true). */
  drop(agentId: string, loggedOut: boolean): Promise<void>;
  sent(agentId: string): Promise<ContractSent[]>;
  /**
   * WhatsApp reports, in the library's own terms, what became of a message the agent sent (`waMessageId`, as the send
   * returned it).
   */
  ack(agentId: string, waMessageId: string, status: AckStatus): Promise<void>;
  /** WhatsApp does not know this phone number (digits): sends to it must be refused, for this connected agent. */
  notOnWhatsApp(agentId: string, phone: string): void;
  /**
   * The next start of this agent fails the way the library fails when WhatsApp is unreachable; returns a part of
   * the library's error that the reported reason must carry. Absent when the engine's connection cannot fail.
   */
  failNextStart?(agentId: string): string;
  /** How many library clients (browser sessions, sockets) were built for this agent so far. */
  connections?(agentId: string): number;
  /** Whether everything the library held for this agent (browser, socket) has been released. */
  released?(agentId: string): boolean;
  /**
   * Another instance of the engine on the same login storage, as another process on the same database has it (its
   * own folders, its own memory); the harness closes it. Absent when logins stay in one process.
   */
  otherInstance?(): Promise<Engine>;
  close(): Promise<void>;
}

export interface EngineContractOptions {
  name: string;
  createHarness(): Promise<EngineHarness>;
}

const PHONE = '6281234567890';
const logger = pino({ level: 'silent' });

/** Waits for the next `event` of a session (or fails the test after a while). */
export function nextEvent<K extends keyof EngineSessionEvents>(
  session: EngineSession,
  event: K,
  timeoutMs = 5_000,
): Promise<EngineSessionEvents[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} event within ${timeoutMs} ms`)), timeoutMs);
    const emitter = session as unknown as NodeJS.EventEmitter;
    emitter.once(event, (...args: unknown[]) => {
      clearTimeout(timer);
      resolve(args as EngineSessionEvents[K]);
    });
  });
}

/** Waits until `check` holds (or fails the test after a while): some engines report events a tick later. */
async function waitFor(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export function runEngineContract({ name, createHarness }: EngineContractOptions): void {
  describe(`engine contract: ${name}`, () => {
    let harness: EngineHarness;
    const sessions: EngineSession[] = [];
    let counter = 0;
    let agentId: string;

    beforeEach(async () => {
      harness = await createHarness();
      counter += 1;
      agentId = `contract-${counter}`;
    });
    afterEach(async () => {
      for (const session of sessions.splice(0)) await session.stop();
      await harness.close();
    });

    const open = () => {
      const session = harness.engine.createSession(agentId, { logger });
      sessions.push(session);
      return session;
    };

    /** A started session that the phone has linked. */
    const connected = async () => {
      const session = open();
      const qr = nextEvent(session, 'qr');
      await session.start();
      await qr;
      const ready = nextEvent(session, 'ready');
      await harness.scan(agentId, PHONE);
      await ready;
      return session;
    };

    it('shows a QR code when no login is stored, and stores none until the phone scans', async () => {
      expect(await harness.engine.hasStoredLogin(agentId)).toBe(false);
      const session = open();
      const qr = nextEvent(session, 'qr');
      await session.start();
      const [text] = await qr;
      expect(typeof text).toBe('string');
      expect(text.length).toBeGreaterThan(0);
      await session.stop();
      expect(await harness.engine.hasStoredLogin(agentId)).toBe(false);
    });

    it('becomes ready as the scanning phone, with a canonical JID, and stores the login', async () => {
      const session = open();
      const events: string[] = [];
      session.on('authenticated', () => events.push('authenticated'));
      session.on('ready', () => events.push('ready'));
      await session.start();
      await nextEvent(session, 'qr');
      const ready = nextEvent(session, 'ready');
      await harness.scan(agentId, PHONE);
      const [identity] = await ready;
      expect(identity.me).toBe(`${PHONE}@c.us`);
      expect(events).toEqual(['authenticated', 'ready']);
      expect(await harness.engine.hasStoredLogin(agentId)).toBe(true);
    });

    it('resumes a stored login after stop() without a QR code', async () => {
      const first = await connected();
      await first.stop();
      expect(await harness.engine.hasStoredLogin(agentId)).toBe(true);
      const second = open();
      let qrShown = false;
      second.on('qr', () => {
        qrShown = true;
      });
      const ready = nextEvent(second, 'ready');
      await second.start();
      const [identity] = await ready;
      expect(identity.me).toBe(`${PHONE}@c.us`);
      expect(qrShown).toBe(false);
    });

    it('resumes a login stored by one instance on another (another process) without a QR code', async (context) => {
      if (!harness.otherInstance) {
        context.skip(`${name} keeps logins in one process`);
        return;
      }
      const first = await connected();
      await first.stop();
      const other = await harness.otherInstance();
      expect(await other.hasStoredLogin(agentId)).toBe(true);
      const moved = other.createSession(agentId, { logger });
      sessions.push(moved);
      let qrShown = false;
      moved.on('qr', () => {
        qrShown = true;
      });
      const ready = nextEvent(moved, 'ready');
      await moved.start();
      const [identity] = await ready;
      expect(identity.me).toBe(`${PHONE}@c.us`);
      expect(qrShown).toBe(false);
      // A logout where the session now runs ends the login for the first instance too.
      await moved.logout();
      expect(await other.hasStoredLogin(agentId)).toBe(false);
      expect(await harness.engine.hasStoredLogin(agentId)).toBe(false);
    });

    it('delivers a private text message with canonical JIDs and the sender name', async () => {
      const session = await connected();
      const received = nextEvent(session, 'message');
      await harness.deliver(agentId, {
        id: 'MSG1',
        from: '6289900000001@c.us',
        text: 'halo',
        pushName: 'Budi',
        timestampSeconds: 1_764_000_000,
      });
      const [message] = await received;
      expect(message).toMatchObject<Partial<InboundMessage>>({
        chatJid: '6289900000001@c.us',
        senderJid: '6289900000001@c.us',
        text: 'halo',
        type: 'text',
        isGroup: false,
        fromMe: false,
        mentions: [],
        pushName: 'Budi',
        timestamp: 1_764_000_000_000,
      });
      expect(message.id).toContain('MSG1');
    });

    it('delivers a group message with its participant and mentions, LIDs included', async () => {
      const session = await connected();
      const received = nextEvent(session, 'message');
      await harness.deliver(agentId, {
        id: 'MSG2',
        from: '6289900000002@c.us',
        group: '120363025555555555@g.us',
        text: '@bot @someone hi',
        mentions: [`${PHONE}@c.us`, '123456789012345@lid'],
        timestampSeconds: 1_764_000_100,
      });
      const [message] = await received;
      expect(message).toMatchObject({
        chatJid: '120363025555555555@g.us',
        senderJid: '6289900000002@c.us',
        isGroup: true,
        mentions: [`${PHONE}@c.us`, '123456789012345@lid'],
      });
    });

    it('reports both addresses of a sender who writes by LID, in a private chat and in a group', async () => {
      const session = await connected();
      const privately = nextEvent(session, 'message');
      await harness.deliver(agentId, {
        id: 'MSG3',
        from: '6289900000003@c.us',
        fromLid: '210987654321098@lid',
        text: 'halo',
        timestampSeconds: 1_764_000_200,
      });
      const [message] = await privately;
      expect(message).toMatchObject({
        isGroup: false,
        senderPhoneJid: '6289900000003@c.us',
        senderLid: '210987654321098@lid',
      });
      // Either address may name the chat; it is one of the person's two.
      expect(['6289900000003@c.us', '210987654321098@lid']).toContain(message.chatJid);
      expect(message.senderJid).toBe(message.chatJid);

      const inGroup = nextEvent(session, 'message');
      await harness.deliver(agentId, {
        id: 'MSG4',
        from: '6289900000003@c.us',
        fromLid: '210987654321098@lid',
        group: '120363025555555555@g.us',
        text: 'halo semua',
        timestampSeconds: 1_764_000_300,
      });
      const [groupMessage] = await inGroup;
      expect(groupMessage).toMatchObject({
        chatJid: '120363025555555555@g.us',
        senderPhoneJid: '6289900000003@c.us',
        senderLid: '210987654321098@lid',
      });
    });

    it("hands over a voice note's file byte for byte, with its type, mime type and duration", async () => {
      const session = await connected();
      expect(session.downloadMedia).toBeTypeOf('function');
      const voice = Buffer.concat([Buffer.from('OggS'), Buffer.alloc(3_000, 7)]);
      const received = nextEvent(session, 'message');
      await harness.deliver(agentId, {
        id: 'VOICE1',
        from: '6289900000001@c.us',
        text: '',
        timestampSeconds: 1_764_000_200,
        media: { kind: 'audio', data: voice, mimeType: 'audio/ogg; codecs=opus', durationSeconds: 7 },
      });
      const [message] = await received;
      expect(message).toMatchObject({ type: 'audio', text: '', chatJid: '6289900000001@c.us' });
      expect(message.media).toMatchObject({ mimeType: 'audio/ogg; codecs=opus', durationSeconds: 7 });
      const download = await session.downloadMedia?.(message.id);
      const chunks: Buffer[] = [];
      for await (const chunk of download?.stream ?? []) chunks.push(Buffer.from(chunk as Uint8Array));
      expect(Buffer.concat(chunks).equals(voice)).toBe(true);
      expect(download?.mimeType).toBe('audio/ogg; codecs=opus');
    });

    it("hands over a document's file with its name and caption, and refuses a message it does not know", async () => {
      const session = await connected();
      const pdf = Buffer.from('%PDF-1.7 fake invoice');
      const received = nextEvent(session, 'message');
      await harness.deliver(agentId, {
        id: 'DOC1',
        from: '6289900000001@c.us',
        text: 'the invoice',
        timestampSeconds: 1_764_000_300,
        media: { kind: 'document', data: pdf, mimeType: 'application/pdf', filename: 'invoice.pdf' },
      });
      const [message] = await received;
      expect(message).toMatchObject({ type: 'document', text: 'the invoice' });
      expect(message.media).toMatchObject({ mimeType: 'application/pdf', filename: 'invoice.pdf' });
      const download = await session.downloadMedia?.(message.id);
      const chunks: Buffer[] = [];
      for await (const chunk of download?.stream ?? []) chunks.push(Buffer.from(chunk as Uint8Array));
      expect(Buffer.concat(chunks).toString()).toBe(pdf.toString());
      await expect(session.downloadMedia?.('NO-SUCH-MESSAGE')).rejects.toThrow();
    });

    it('delivers a location with its coordinates and name', async () => {
      const session = await connected();
      const received = nextEvent(session, 'message');
      await harness.deliver(agentId, {
        id: 'LOC1',
        from: '6289900000001@c.us',
        text: '',
        timestampSeconds: 1_764_000_400,
        location: { latitude: -6.175392, longitude: 106.827153, name: 'Monas' },
      });
      const [message] = await received;
      expect(message.type).toBe('location');
      expect(message.location).toMatchObject({ latitude: -6.175392, longitude: 106.827153, name: 'Monas' });
    });

    it('sends text with a quote and mentions, and an image with a caption', async () => {
      const session = await connected();
      const text = await session.sendText('6289900000001@c.us', 'hello', {
        quotedMessageId: 'QUOTED1',
        mentions: ['6289900000003@c.us'],
      });
      const image = await session.sendImage('120363025555555555@g.us', {
        data: Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]),
        mimeType: 'image/png',
        filename: 'a.png',
        caption: 'look',
      });
      expect(text.id).not.toBe('');
      expect(image.id).not.toBe(text.id);
      expect(await harness.sent(agentId)).toEqual([
        {
          to: '6289900000001@c.us',
          kind: 'text',
          text: 'hello',
          quotedMessageId: 'QUOTED1',
          mentions: ['6289900000003@c.us'],
        },
        { to: '120363025555555555@g.us', kind: 'image', caption: 'look', mimeType: 'image/png', bytes: 7 },
      ]);
    });

    it("reports WhatsApp's receipts for a sent message under the id its send returned, in the order they come", async () => {
      const session = await connected();
      const text = await session.sendText('6289900000001@c.us', 'hello');
      const image = await session.sendImage('6289900000002@c.us', {
        data: Buffer.from([0x89, 0x50, 0x4e, 0x47]),
        mimeType: 'image/png',
      });
      const acks: MessageAck[] = [];
      session.on('ack', (ack) => acks.push(ack));
      for (const status of ACK_STATUSES) await harness.ack(agentId, text.id, status);
      await harness.ack(agentId, image.id, 'read');
      await waitFor(() => acks.length === ACK_STATUSES.length + 1);
      expect(acks.map(({ waMessageId, status }) => ({ waMessageId, status }))).toEqual([
        ...ACK_STATUSES.map((status) => ({ waMessageId: text.id, status })),
        { waMessageId: image.id, status: 'read' },
      ]);
      for (const ack of acks) if (ack.at !== undefined) expect(ack.at).toBeGreaterThan(0);
      expect(acks.find((ack) => ack.status === 'error')?.error).toEqual(expect.any(String));
      expect(acks.filter((ack) => ack.status !== 'error' && ack.error !== undefined)).toEqual([]);
    });

    it('refuses a recipient who is not on WhatsApp with RecipientRejectedError, and sends nothing to it', async () => {
      const session = await connected();
      harness.notOnWhatsApp(agentId, '6289900000009');
      const refused = await session.sendText('6289900000009@c.us', 'anyone there?').catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(RecipientRejectedError);
      expect(refused).toMatchObject({ reason: 'not_on_whatsapp', recipient: '6289900000009@c.us' });
      await session.sendText('6289900000001@c.us', 'hello');
      expect(await harness.sent(agentId)).toEqual([{ to: '6289900000001@c.us', kind: 'text', text: 'hello' }]);
    });

    it('sends documents, audio, voice notes, video and stickers as their kind', async () => {
      const session = await connected();
      if (!session.sendMedia) throw new Error(`${name} has no sendMedia`);
      const file = (n: number) => Buffer.alloc(n, n);
      const to = '6289900000001@c.us';
      const ids = [
        await session.sendMedia(to, {
          kind: 'document',
          data: file(11),
          mimeType: 'application/pdf',
          filename: 'invoice.pdf',
          caption: 'the invoice',
        }),
        await session.sendMedia(to, { kind: 'audio', data: file(12), mimeType: 'audio/mpeg' }),
        await session.sendMedia(to, { kind: 'audio', data: file(13), mimeType: 'audio/ogg; codecs=opus', voice: true }),
        await session.sendMedia(to, { kind: 'video', data: file(14), mimeType: 'video/mp4', caption: 'clip' }),
        await session.sendMedia(
          to,
          { kind: 'sticker', data: file(15), mimeType: 'image/webp' },
          { quotedMessageId: 'Q1' },
        ),
      ];
      expect(new Set(ids.map((sent) => sent.id)).size).toBe(5);
      const sent = (await harness.sent(agentId)).map(({ sha256: _, ...entry }) => entry);
      expect(sent).toEqual([
        {
          to,
          kind: 'document',
          mimeType: 'application/pdf',
          bytes: 11,
          filename: 'invoice.pdf',
          caption: 'the invoice',
        },
        { to, kind: 'audio', mimeType: 'audio/mpeg', bytes: 12, voice: false },
        { to, kind: 'audio', mimeType: 'audio/ogg; codecs=opus', bytes: 13, voice: true },
        { to, kind: 'video', mimeType: 'video/mp4', bytes: 14, caption: 'clip' },
        { to, kind: 'sticker', mimeType: 'image/webp', bytes: 15, quotedMessageId: 'Q1' },
      ]);
    });

    it('sends a location and a contact card', async () => {
      const session = await connected();
      if (!session.sendLocation || !session.sendContact) throw new Error(`${name} lacks sendLocation/sendContact`);
      const vcard = 'BEGIN:VCARD\nVERSION:3.0\nFN:Budi\nTEL;type=CELL;waid=6281234567891:+6281234567891\nEND:VCARD';
      const place = await session.sendLocation('120363025555555555@g.us', {
        latitude: -6.1754,
        longitude: 106.8272,
        name: 'Monas',
        address: 'Jakarta',
      });
      const card = await session.sendContact('6289900000001@c.us', { vcard, displayName: 'Budi' });
      expect(place.id).not.toBe(card.id);
      expect(await harness.sent(agentId)).toEqual([
        {
          to: '120363025555555555@g.us',
          kind: 'location',
          latitude: -6.1754,
          longitude: 106.8272,
          name: 'Monas',
          address: 'Jakarta',
        },
        { to: '6289900000001@c.us', kind: 'contact', vcard, displayName: 'Budi' },
      ]);
    });

    it('reacts to a message it sent and to one it received, and marks a chat read', async () => {
      const session = await connected();
      if (!session.react || !session.markRead) throw new Error(`${name} lacks react/markRead`);
      const received = nextEvent(session, 'message');
      await harness.deliver(agentId, {
        id: 'MSGR',
        from: '6289900000001@c.us',
        text: 'halo',
        timestampSeconds: 1_764_000_000,
      });
      const [inbound] = await received;
      const mine = await session.sendText('6289900000001@c.us', 'hello');
      await session.react({ chatJid: '6289900000001@c.us', waMessageId: mine.id, fromMe: true }, '👍');
      await session.react({ chatJid: inbound.chatJid, waMessageId: inbound.id, fromMe: false }, '');
      await session.markRead('6289900000001@c.us');
      const sent = (await harness.sent(agentId)).filter((entry) => entry.kind !== 'text');
      expect(sent).toEqual([
        { to: '6289900000001@c.us', kind: 'reaction', emoji: '👍', targetMessageId: mine.id },
        { to: '6289900000001@c.us', kind: 'reaction', emoji: '', targetMessageId: inbound.id },
        { to: '6289900000001@c.us', kind: 'read' },
      ]);
    });

    it('shows and clears the typing indicator', async () => {
      const session = await connected();
      if (!session.setTyping) throw new Error(`${name} has no setTyping`);
      await session.setTyping('6289900000001@c.us', true);
      await session.setTyping('6289900000001@c.us', false);
      const typing = (await harness.sent(agentId)).filter((entry) => entry.kind === 'typing');
      expect(typing).toEqual([
        { to: '6289900000001@c.us', kind: 'typing', typing: true },
        { to: '6289900000001@c.us', kind: 'typing', typing: false },
      ]);
    });

    it('refuses to send before it is connected', async () => {
      const session = open();
      await session.start();
      await nextEvent(session, 'qr');
      await expect(session.sendText('6289900000001@c.us', 'too early')).rejects.toThrow();
      expect(await harness.sent(agentId)).toEqual([]);
    });

    it('reports a dropped connection and keeps the login for a reconnect', async () => {
      const session = await connected();
      const disconnected = nextEvent(session, 'disconnected');
      await harness.drop(agentId, false);
      const [info] = await disconnected;
      expect(info.loggedOut).toBe(false);
      expect(info.reason).not.toBe('');
      expect(await harness.engine.hasStoredLogin(agentId)).toBe(true);
      await expect(session.sendText('6289900000001@c.us', 'x')).rejects.toThrow();
    });

    it('reports an unlinked device as logged out and forgets the login', async () => {
      const session = await connected();
      const disconnected = nextEvent(session, 'disconnected');
      await harness.drop(agentId, true);
      const [info] = await disconnected;
      expect(info.loggedOut).toBe(true);
      expect(await harness.engine.hasStoredLogin(agentId)).toBe(false);
    });

    it('logout() deletes the stored login; clearStoredLogin() does too for a stopped agent', async () => {
      const session = await connected();
      await session.logout();
      expect(await harness.engine.hasStoredLogin(agentId)).toBe(false);
      const again = await connected();
      await again.stop();
      expect(await harness.engine.hasStoredLogin(agentId)).toBe(true);
      await harness.engine.clearStoredLogin(agentId);
      expect(await harness.engine.hasStoredLogin(agentId)).toBe(false);
    });

    it('reports a start that fails once under way as disconnected, and releases the library', async (context) => {
      if (!harness.failNextStart) {
        context.skip(`${name} cannot fail a start: its connection never fails`);
        return;
      }
      const cause = harness.failNextStart(agentId);
      const session = open();
      const disconnected = nextEvent(session, 'disconnected');
      await session.start();
      const [info] = await disconnected;
      expect(info).toMatchObject({ loggedOut: false });
      expect(info.reason).toContain(cause);
      expect(harness.released?.(agentId)).toBe(true);
      await expect(session.sendText('6289900000001@c.us', 'x')).rejects.toThrow();
    });

    it('builds one connection when start() is called twice at once', async () => {
      const session = open();
      const qr = nextEvent(session, 'qr');
      await Promise.all([session.start(), session.start()]);
      await qr;
      if (harness.connections) expect(harness.connections(agentId)).toBe(1);
      const ready = nextEvent(session, 'ready');
      await harness.scan(agentId, PHONE);
      await ready;
      await session.stop();
      if (harness.connections) expect(harness.released?.(agentId)).toBe(true);
    });

    it('can start again after a drop, and stop() twice is harmless', async () => {
      const session = await connected();
      const disconnected = nextEvent(session, 'disconnected');
      await harness.drop(agentId, false);
      await disconnected;
      const ready = nextEvent(session, 'ready');
      await session.start();
      await ready;
      await session.stop();
      await session.stop();
      if (harness.released) expect(harness.released(agentId)).toBe(true);
    });
  });
}
