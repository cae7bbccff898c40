// When a paced message goes out, and what its agent's dispatcher does until then: pure arithmetic on the profile.
import type { PacingProfile } from './pacing.schemas.js';

/** How long the typing indicator shows before a message of `length` characters. */
export function typingMs(profile: PacingProfile, length: number): number {
  return Math.min(profile.maxTypingMs, Math.round(length * profile.typingMsPerChar));
}

/** A gap in [minGapMs, maxGapMs] (both ends included) for `random` in [0, 1). */
export function gapMs(profile: PacingProfile, random: number): number {
  const span = profile.maxGapMs - profile.minGapMs;
  return profile.minGapMs + Math.min(span, Math.floor(random * (span + 1)));
}

export interface PlanInput {
  profile: PacingProfile;
  /** When the message became its agent's next one (the previous send ended, or it was accepted into an idle queue). */
  now: number;
  /** Characters of its text or caption. */
  length: number;
  /** When the agent last sent to this recipient (epoch ms); null when never, or not known. */
  lastToRecipient: number | null;
  /** In [0, 1): picks the gap. */
  random: number;
}

/**
 * When the message is sent: after a random gap and then the typing, counted from `now`, and no sooner than
 * perRecipientGapMs after the last message to the same recipient. The typing shows for the `typingMs` before it.
 */
export function planSend({ profile, now, length, lastToRecipient, random }: PlanInput): {
  sendAt: number;
  typingMs: number;
} {
  const typing = typingMs(profile, length);
  const paced = now + gapMs(profile, random) + typing;
  const spaced = lastToRecipient === null ? paced : lastToRecipient + profile.perRecipientGapMs;
  return { sendAt: Math.max(paced, spaced), typingMs: typing };
}

/** What a paced message's dispatcher does at `now`: wait (ms), show the typing indicator and then wait, or send. */
export type PacingStep = { action: 'wait'; ms: number } | { action: 'type'; ms: number } | { action: 'send' };

export function pacingStep(now: number, sendAt: number, typing: number, typingShown: boolean): PacingStep {
  if (now >= sendAt) return { action: 'send' };
  const typingFrom = sendAt - typing;
  if (now < typingFrom) return { action: 'wait', ms: typingFrom - now };
  return typingShown ? { action: 'wait', ms: sendAt - now } : { action: 'type', ms: sendAt - now };
}
