// Pacing profiles: how a paced agent's sends imitate a person (a random gap, typing for as long as the text needs,
// spacing per recipient, a daily cap on new contacts). The setting the API takes, the presets, the profile applied.
import { z } from 'zod';

/**
 * A whole number in [0, max]. multipleOf(1) rather than int(): zod reports an int() failure as a wrong type, which
 * would hide the field's own message behind the union's (pacingSettingSchema).
 */
const whole = (max: number) => z.number().min(0).max(max).multipleOf(1);
const ms = (max: number, what: string) => whole(max).describe(what);

/**
 * The "human" preset. A person answering from a phone: 2 to 8 s between two messages (reading, switching chats),
 * typing at ~40 ms a character (a fast thumb typist; long answers capped at 6 s, not the minute a person would take,
 * so an AI's long reply is not held absurdly long), a message to the same person at most every 20 s, and at most 20
 * people written to for the first time a day: cold outreach is what gets numbers banned (docs/pacing.md).
 */
export const HUMAN_PACING = {
  minGapMs: 2_000,
  maxGapMs: 8_000,
  typingMsPerChar: 40,
  maxTypingMs: 6_000,
  perRecipientGapMs: 20_000,
  newContactsPerDay: 20,
} as const;

/** A custom profile: every field left out takes the "human" value; `newContactsPerDay: null` means no cap. */
export const pacingProfileSchema = z
  .object({
    minGapMs: ms(600_000, 'Shortest random gap before a send (ms)').default(HUMAN_PACING.minGapMs),
    maxGapMs: ms(600_000, 'Longest random gap before a send (ms)').default(HUMAN_PACING.maxGapMs),
    typingMsPerChar: ms(1_000, 'Typing shown per character of the text or caption (ms)').default(
      HUMAN_PACING.typingMsPerChar,
    ),
    maxTypingMs: ms(60_000, 'Longest typing shown before one message (ms)').default(HUMAN_PACING.maxTypingMs),
    perRecipientGapMs: ms(86_400_000, 'Shortest time between two messages to the same recipient (ms)').default(
      HUMAN_PACING.perRecipientGapMs,
    ),
    newContactsPerDay: whole(100_000)
      .nullable()
      .describe('People written to for the first time in any 24 h, at most (null: no cap)')
      .default(HUMAN_PACING.newContactsPerDay),
  })
  .refine((p) => p.minGapMs <= p.maxGapMs, {
    message: 'minGapMs must not be greater than maxGapMs',
    path: ['minGapMs'],
  });

export type PacingProfile = z.output<typeof pacingProfileSchema>;

/** What PATCH /sessions/{agentId} and POST /sessions take: "off" (the default), "human", or a profile. */
export const pacingSettingSchema = z
  .union([z.enum(['off', 'human']), pacingProfileSchema], {
    error: 'must be "off", "human" or a profile object ({ minGapMs, maxGapMs, typingMsPerChar, … })',
  })
  .describe('"off" (sends go as fast as the rate limit lets them), "human" (the preset), or a custom profile');

export type PacingSetting = z.output<typeof pacingSettingSchema>;

/** The setting as responses show it (no defaults or checks: it was validated when it was stored). */
export const pacingViewSchema = z.union([
  z.enum(['off', 'human']),
  z.object({
    minGapMs: z.number().int(),
    maxGapMs: z.number().int(),
    typingMsPerChar: z.number().int(),
    maxTypingMs: z.number().int(),
    perRecipientGapMs: z.number().int(),
    newContactsPerDay: z.number().int().nullable(),
  }),
]);

/** The profile a setting applies; null when the agent is not paced. */
export function resolvePacing(setting: PacingSetting): PacingProfile | null {
  if (setting === 'off') return null;
  if (setting === 'human') return { ...HUMAN_PACING };
  return setting;
}

/** The column's value read back ("human", a profile, or NULL); anything unreadable is off. */
export function storedPacing(value: unknown): PacingSetting {
  if (value === null || value === undefined) return 'off';
  const parsed = pacingSettingSchema.safeParse(value);
  return parsed.success ? parsed.data : 'off';
}

/** The column's value for a setting: NULL for off. */
export function pacingColumn(setting: PacingSetting): PacingSetting | null {
  return setting === 'off' ? null : setting;
}
