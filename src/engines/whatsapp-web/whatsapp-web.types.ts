// The slice of whatsapp-web.js this adapter uses, so a fake Client can stand in for the real one in tests.
import type { Chat, ContactId, Location, Message, MessageAck, MessageMedia, MessageSendOptions } from 'whatsapp-web.js';

/** The fields of a whatsapp-web.js Message the translation reads; `rawData` is the library's `_data`. */
export type WwebMessageData = Pick<
  Message,
  'id' | 'from' | 'to' | 'author' | 'body' | 'type' | 'timestamp' | 'fromMe' | 'mentionedIds' | 'hasMedia'
> &
  Partial<Pick<Message, 'duration' | 'location'>> & { rawData?: object };

/** What Message.downloadMedia() resolves to: the file in base64, or nothing when WhatsApp no longer has it. */
export type WwebDownloadedMedia = Pick<MessageMedia, 'mimetype' | 'data'> & { filename?: string | null | undefined };

export type WwebMessage = WwebMessageData & {
  getChat(): Promise<Pick<Chat, 'name'>>;
  /** `id` is the phone JID for a LID sender whose number WhatsApp Web knows (its getContactModel swaps it in). */
  getContact(): Promise<{ pushname?: string; name?: string; id?: { _serialized: string } }>;
  /** Typed as MessageMedia by the library; it resolves to undefined (or null) when the file cannot be had. */
  downloadMedia(): Promise<WwebDownloadedMedia | null | undefined>;
};

/** The fields of the Message a `message_ack` event carries that the adapter reads. */
export type WwebAckedMessage = Pick<Message, 'id' | 'fromMe' | 'ack'>;

/** What the adapter needs of puppeteer's Browser and Page: to learn that they went away. */
export interface WwebBrowserHandle {
  isConnected(): boolean;
  once(event: 'disconnected', listener: () => void): unknown;
}
export interface WwebPageHandle {
  once(event: 'close' | 'error', listener: (error?: Error) => void): unknown;
}

/** whatsapp-web.js's Client as this adapter uses it. Event names and payloads follow its index.d.ts. */
/** What sendMessage sends: a text or a vCard, a file, a location. */
export type WwebContent = string | MessageMedia | Location;
export type WwebSendOptions = MessageSendOptions;

export interface WwebClient {
  info?: { wid?: ContactId } | undefined;
  pupBrowser?: WwebBrowserHandle | null | undefined;
  pupPage?: WwebPageHandle | null | undefined;
  on(event: 'qr' | 'code', listener: (value: string) => void): unknown;
  on(event: 'authenticated' | 'ready', listener: () => void): unknown;
  on(event: 'auth_failure', listener: (message: string) => void): unknown;
  on(event: 'change_state' | 'disconnected', listener: (state: string) => void): unknown;
  on(event: 'message', listener: (message: WwebMessage) => void): unknown;
  on(event: 'message_ack', listener: (message: WwebAckedMessage, ack: MessageAck) => void): unknown;
  removeAllListeners(): unknown;
  initialize(): Promise<void>;
  destroy(): Promise<void>;
  logout(): Promise<void>;
  sendMessage(
    chatId: string,
    content: WwebContent,
    options?: WwebSendOptions,
  ): Promise<{ id: { _serialized: string } }>;
  /** The message with this serialized id; null (or a throw) when the page does not know it. */
  getMessageById(messageId: string): Promise<Pick<Message, 'react'> | null>;
  /** Marks the chat's messages read (blue ticks). */
  sendSeen(chatId: string): Promise<boolean>;
  getChatById(chatId: string): Promise<Pick<Chat, 'sendStateTyping' | 'clearState'>>;
  requestPairingCode(phoneNumber: string, showNotification?: boolean): Promise<string>;
  getContactLidAndPhone(userIds: string[]): Promise<{ lid: string; pn: string }[]>;
  getNumberId(number: string): Promise<ContactId | null>;
}

/** What the adapter hands to the client factory: exactly the options of whatsapp-web.js's Client it sets. */
export interface WwebClientSettings {
  /** LocalAuth's dataPath and clientId: the login lives in `<dataPath>/session-<clientId>`. */
  dataPath: string;
  clientId: string;
  executablePath: string;
  args: string[];
}

export type WwebClientFactory = (settings: WwebClientSettings) => WwebClient | Promise<WwebClient>;
