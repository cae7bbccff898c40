// The slice of a Baileys 7 socket this adapter uses, so a fake socket can stand in for the real one in tests.
import type { Readable } from 'node:stream';
import type {
  AnyMessageContent,
  BaileysEventMap,
  Contact,
  GroupMetadata,
  MiscMessageGenerationOptions,
  UserFacingSocketConfig,
  WAMessage,
  WAMessageKey,
  WAPresence,
} from 'baileys';

export interface BaileysEvents {
  on<T extends keyof BaileysEventMap>(event: T, listener: (arg: BaileysEventMap[T]) => void): void;
}

export interface BaileysSocket {
  ev: BaileysEvents;
  /** The linked account (`creds.me`), once there is one. */
  readonly user: Contact | undefined;
  sendMessage(
    jid: string,
    content: AnyMessageContent,
    options?: MiscMessageGenerationOptions,
  ): Promise<WAMessage | undefined>;
  sendPresenceUpdate(type: WAPresence, toJid?: string): Promise<void>;
  requestPairingCode(phoneNumber: string, customPairingCode?: string): Promise<string>;
  logout(msg?: string): Promise<void>;
  end(error: Error | undefined): Promise<void> | void;
  groupMetadata(jid: string): Promise<Pick<GroupMetadata, 'subject'>>;
  readMessages(keys: WAMessageKey[]): Promise<void>;
  onWhatsApp(...jids: string[]): Promise<{ jid: string; exists: boolean }[] | undefined>;
  /** Asks the sender's phone to upload a file again whose link on WhatsApp's servers has expired. */
  updateMediaMessage(message: WAMessage): Promise<WAMessage>;
}

type DownloadMediaMessage = typeof import('baileys').downloadMediaMessage;

/**
 * Baileys' downloadMediaMessage as the adapter calls it (`stream`): fetches the file from WhatsApp's servers and
 * decrypts it. A module function rather than a socket method, so tests pass a fake of it.
 */
export type BaileysMediaDownloader = (
  message: WAMessage,
  type: 'stream',
  options: Parameters<DownloadMediaMessage>[2],
  ctx: NonNullable<Parameters<DownloadMediaMessage>[3]>,
) => Promise<Readable>;

/** Builds a socket for an agent; the agent is named so that a fake can tell its sockets apart. */
export type BaileysSocketFactory = (config: UserFacingSocketConfig, agentId: string) => BaileysSocket;
