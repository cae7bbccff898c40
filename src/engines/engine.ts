// The engine port: what the services need from a WhatsApp library. Adapters implement it; vendor objects stay behind it.
import type { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import type { Logger } from '../observability/logger.js';
import type { EngineName } from '../whatsapp/engine-names.js';

export type { EngineName };

export type InboundMessageType = 'text' | 'image' | 'video' | 'audio' | 'document' | 'sticker' | 'location' | 'other';

/** A message as the services see it, whatever engine delivered it. JIDs are canonical (see whatsapp/jid.ts). */
export interface InboundMessage {
  /** WhatsApp's message id; unique per agent. */
  id: string;
  /** Where to answer: `<digits>@c.us`, `<id>@g.us`, `<id>@lid`, `status@broadcast`, `<id>@newsletter`… */
  chatJid: string;
  /** Who wrote it: in a private chat the same as chatJid, in a group the participant. */
  senderJid: string;
  /** The text, or the caption of a media message; empty when there is none. */
  text: string;
  type: InboundMessageType;
  isGroup: boolean;
  /** JIDs mentioned in the message (`@c.us` or `@lid`). */
  mentions: string[];
  fromMe: boolean;
  /** When WhatsApp says it was sent, in milliseconds since the epoch. */
  timestamp: number;
  pushName: string | null;
  chatName: string | null;
  /** WhatsApp's id of the message this one quotes (a reply); absent or null when it quotes none. */
  quotedMessageId?: string | null | undefined;
  /** What the engine says of an attached file (never its bytes); absent or null for a message without one. */
  media?: InboundMedia | null | undefined;
  /**
   * The sender's phone JID (`<digits>@c.us`) where the engine knows it, also when senderJid is a LID; absent or null
   * when it does not. With senderLid, one person's two addresses (see IdentityPair). In a private chat the person
   * wrote (not fromMe), they are the chat's addresses too.
   */
  senderPhoneJid?: string | null | undefined;
  /** The sender's LID (`<id>@lid`) where the engine knows it, also when senderJid is a phone JID; absent or null. */
  senderLid?: string | null | undefined;
  /** A shared location (type `location`); absent or null otherwise. */
  location?: InboundLocation | null | undefined;
}

/** Where a location message points. */
export interface InboundLocation {
  latitude: number;
  longitude: number;
  /** The place's name, when the sender picked a place; null for a bare pin. */
  name: string | null;
  address?: string | null | undefined;
}

/** An inbound message's file, as the engine hands it over: streamed, never a vendor object. */
export interface MediaDownload {
  /** The bytes, to be read once. */
  stream: Readable;
  /** What the engine says the bytes are, where it knows better than the message did. */
  mimeType: string | null;
  filename: string | null;
}

/**
 * One person's two addresses as WhatsApp gave them to this account: the anonymous LID (`<id>@lid`) and the phone JID
 * (`<digits>@c.us`). An account may learn the pair from a message or elsewhere (Baileys' `lid-mapping.update`,
 * contacts); which pairs an account knows is its own business, so the service keeps them per agent.
 */
export interface IdentityPair {
  lid: string;
  phoneJid: string;
  /** The person's public name, when the source carried one. */
  pushName?: string | null | undefined;
}

/** An attachment's metadata, as far as the engine reports it. */
export interface InboundMedia {
  mimeType: string | null;
  /** In bytes. */
  size: number | null;
  filename: string | null;
  /** Voice notes, audio and video: their length in seconds, where the engine reports it. */
  durationSeconds?: number | null | undefined;
}

/** The connected account: its phone JID and, where the engine knows it, its LID. */
export interface EngineIdentity {
  me: string;
  lid?: string | null;
}

/**
 * What WhatsApp says became of a message the agent sent, in the order a message goes through them: its server took it
 * (one tick), the recipient's phone got it (two ticks), the recipient read it (blue ticks), played it (voice, video).
 * `error`: WhatsApp refused or could not deliver it after taking it.
 */
export const ACK_STATUSES = ['server', 'delivered', 'read', 'played', 'error'] as const;
export type AckStatus = (typeof ACK_STATUSES)[number];

/** A receipt for a message the agent sent, whichever engine reported it. */
export interface MessageAck {
  /** WhatsApp's id of the message, as sendText/sendImage returned it. */
  waMessageId: string;
  status: AckStatus;
  /** When WhatsApp says it happened (epoch ms), where the engine is told; absent, the service stamps its arrival. */
  at?: number | undefined;
  /** With `error`: what the engine said went wrong. */
  error?: string | undefined;
}

export interface EngineSessionEvents {
  qr: [qr: string];
  pairing_code: [code: string];
  authenticated: [];
  ready: [identity: EngineIdentity];
  disconnected: [info: { reason: string; loggedOut: boolean }];
  /** The stored login was refused. Terminal: resources are released first and no `disconnected` follows. */
  auth_failure: [message: string];
  message: [message: InboundMessage];
  /** A receipt for a message this session sent (acks of other messages, received or sent elsewhere, may come too). */
  ack: [ack: MessageAck];
  /** LID and phone pairs the engine learned outside a message (Baileys: lid-mapping.update, contacts). Optional. */
  identities: [pairs: IdentityPair[]];
}

export interface SendOptions {
  quotedMessageId?: string | undefined;
  mentions?: string[] | undefined;
}

export interface OutboundImage {
  data: Buffer;
  mimeType: string;
  filename?: string | undefined;
  caption?: string | undefined;
}

/** The kinds of file a message can carry, sent (sendMedia) or received (downloadMedia). */
export const MEDIA_KINDS = ['image', 'document', 'audio', 'video', 'sticker'] as const;
export type MediaKind = (typeof MEDIA_KINDS)[number];

export function isMediaKind(kind: string): kind is MediaKind {
  return (MEDIA_KINDS as readonly string[]).includes(kind);
}

/** Everything a session can send: a text, a file, a location, a contact card, a reaction, a read mark or typing. */
export const OUTBOUND_KINDS = ['text', ...MEDIA_KINDS, 'location', 'contact', 'reaction', 'read', 'typing'] as const;
export type OutboundKind = (typeof OUTBOUND_KINDS)[number];

/**
 * A file to send. `image`, `video`: shown inline with the caption; `document`: as a file with its name (any type);
 * `audio`: a voice note when `voice` (Ogg/Opus), else an audio file; `sticker`: a WebP, without caption.
 */
export interface OutboundMedia {
  kind: MediaKind;
  data: Buffer;
  mimeType: string;
  filename?: string | undefined;
  caption?: string | undefined;
  voice?: boolean | undefined;
}

/** A pinned location; `name` and `address` are what the recipient sees under the map. */
export interface OutboundLocation {
  latitude: number;
  longitude: number;
  name?: string | undefined;
  address?: string | undefined;
}

/** A contact card: one vCard (3.0) text, and the name shown on the card. */
export interface OutboundContact {
  vcard: string;
  displayName: string;
}

/** The message a reaction is for: its chat, WhatsApp's id of it, whether this account sent it, and (in a group, a
 * message received) who wrote it. */
export interface ReactionTarget {
  chatJid: string;
  waMessageId: string;
  fromMe: boolean;
  participant?: string | undefined;
}

/**
 * Thrown by sendText and sendImage when WhatsApp refuses the recipient itself (the number is not on WhatsApp, or has
 * blocked the account): trying again cannot help, so the message fails at once instead of holding its queue through
 * retries. Any other error counts as transient.
 */
export class RecipientRejectedError extends Error {
  override name = 'RecipientRejectedError';
  constructor(
    readonly reason: 'not_on_whatsapp' | 'blocked',
    readonly recipient: string,
  ) {
    super(reason === 'blocked' ? `${recipient} has blocked this account` : `${recipient} is not on WhatsApp`);
  }
}

export interface SentMessage {
  /** WhatsApp's id of the message that was sent. */
  id: string;
}

/**
 * One agent's WhatsApp connection. Optional members are capabilities that some engines lack;
 * a service that needs a missing one throws ENGINE_UNSUPPORTED.
 */
export interface EngineSession extends EventEmitter<EngineSessionEvents> {
  readonly agentId: string;
  /**
   * Connects; resolves once the attempt is under way (the outcome arrives as events). Rejects only when no attempt
   * can begin (no browser binary, the auth store unreadable). Whatever fails after that (WhatsApp unreachable, the
   * browser or socket gone) is reported as one `disconnected` event with `loggedOut: false` and a reason that names
   * the error, emitted after the session has released its browser or socket, so a listener may start it again.
   * A session can be started again after `disconnected` or `stop()`.
   */
  start(): Promise<void>;
  /** Releases every resource (browser, socket, timers) and keeps the stored login. Safe to call twice. */
  stop(): Promise<void>;
  /** Ends the login on WhatsApp's side when it can, deletes the stored auth, and stops. */
  logout(): Promise<void>;
  sendText(to: string, text: string, options?: SendOptions): Promise<SentMessage>;
  sendImage(to: string, image: OutboundImage, options?: SendOptions): Promise<SentMessage>;
  setTyping?(chatJid: string, typing: boolean): Promise<void>;
  /** Sends a file of any kind (sendImage is sendMedia with kind `image`). */
  sendMedia?(to: string, media: OutboundMedia, options?: SendOptions): Promise<SentMessage>;
  sendLocation?(to: string, location: OutboundLocation, options?: SendOptions): Promise<SentMessage>;
  sendContact?(to: string, contact: OutboundContact, options?: SendOptions): Promise<SentMessage>;
  /** Reacts to a message with an emoji; an empty emoji takes the reaction back. */
  react?(target: ReactionTarget, emoji: string): Promise<void>;
  /** Marks the chat's received messages read (blue ticks for their senders). */
  markRead?(chatJid: string): Promise<void>;
  requestPairingCode?(phone: string): Promise<string>;
  /**
   * The file of an inbound message this session delivered (by its `InboundMessage.id`). Rejects when the session no
   * longer knows the message (engines keep a bounded number of recent ones), the message has no file, or WhatsApp's
   * servers no longer have it. The caller reads the stream once and caps its size.
   */
  downloadMedia?(messageId: string): Promise<MediaDownload>;
}

export interface CreateSessionOptions {
  logger: Logger;
}

export interface Engine {
  readonly name: EngineName;
  createSession(agentId: string, options: CreateSessionOptions): EngineSession;
  /** Whether a login is stored for this agent, so that a start resumes it without a QR code. */
  hasStoredLogin(agentId: string): Promise<boolean>;
  /** Deletes the stored login of an agent that has no running session. */
  clearStoredLogin(agentId: string): Promise<void>;
  /** Releases what the engine holds beyond its sessions. */
  close?(): Promise<void>;
  /**
   * Whether a session could begin to start now: null when it could, else the reason it could not (no browser
   * binary). Absent for engines that need nothing outside the process.
   */
  availability?(): Promise<string | null>;
}

/** The engines this process can run, by name. */
export type EngineRegistry = ReadonlyMap<EngineName, Engine>;
