// Small helpers of the whatsapp-web session: send options, file checks, error text, bounded waits.
import { stat } from 'node:fs/promises';
import type { SendOptions } from '../engine.js';
import { toCanonicalJid } from './to-inbound-message.js';

export function sendOptions(options: SendOptions): { quotedMessageId?: string; mentions?: string[] } {
  return {
    ...(options.quotedMessageId ? { quotedMessageId: options.quotedMessageId } : {}),
    ...(options.mentions?.length ? { mentions: options.mentions.map(toCanonicalJid) } : {}),
  };
}

export async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return typeof error === 'string' ? error : (JSON.stringify(error) ?? String(error));
}

export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
