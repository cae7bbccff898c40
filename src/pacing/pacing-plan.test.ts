import { describe, expect, it } from 'vitest';
import {
  HUMAN_PACING,
  type PacingProfile,
  pacingSettingSchema,
  resolvePacing,
  storedPacing,
} from './pacing.schemas.js';
import { gapMs, pacingStep, planSend, typingMs } from './pacing-plan.js';

const HUMAN: PacingProfile = { ...HUMAN_PACING };

describe('pacing plan', () => {
  it('draws gaps over [minGapMs, maxGapMs], both ends included', () => {
    expect(gapMs(HUMAN, 0)).toBe(2_000);
    expect(gapMs(HUMAN, 0.999_999_9)).toBe(8_000);
    expect(gapMs({ ...HUMAN, minGapMs: 5, maxGapMs: 5 }, 0.7)).toBe(5);
    for (let i = 0; i < 1_000; i++) {
      const gap = gapMs(HUMAN, Math.random());
      expect(gap).toBeGreaterThanOrEqual(2_000);
      expect(gap).toBeLessThanOrEqual(8_000);
    }
  });

  it('types for length × typingMsPerChar, at most maxTypingMs', () => {
    expect(typingMs(HUMAN, 0)).toBe(0);
    expect(typingMs(HUMAN, 100)).toBe(4_000);
    expect(typingMs(HUMAN, 1_000)).toBe(6_000);
  });

  it('sends after the gap and the typing, and no sooner than perRecipientGapMs after the last to that recipient', () => {
    const base = { profile: HUMAN, now: 100_000, length: 50, random: 0 };
    expect(planSend({ ...base, lastToRecipient: null })).toEqual({ sendAt: 104_000, typingMs: 2_000 });
    expect(planSend({ ...base, lastToRecipient: 50_000 })).toEqual({ sendAt: 104_000, typingMs: 2_000 });
    expect(planSend({ ...base, lastToRecipient: 95_000 })).toEqual({ sendAt: 115_000, typingMs: 2_000 });
  });

  it('steps: wait for the typing, show it once, wait for the send, send', () => {
    expect(pacingStep(0, 10_000, 3_000, false)).toEqual({ action: 'wait', ms: 7_000 });
    expect(pacingStep(7_000, 10_000, 3_000, false)).toEqual({ action: 'type', ms: 3_000 });
    expect(pacingStep(8_000, 10_000, 3_000, true)).toEqual({ action: 'wait', ms: 2_000 });
    expect(pacingStep(10_000, 10_000, 3_000, true)).toEqual({ action: 'send' });
    expect(pacingStep(12_000, 10_000, 0, false)).toEqual({ action: 'send' });
  });

  it('reads settings: presets, custom profiles filled from "human", anything unreadable as off', () => {
    expect(resolvePacing('off')).toBeNull();
    expect(resolvePacing('human')).toEqual(HUMAN);
    expect(pacingSettingSchema.parse({ perRecipientGapMs: 0 })).toEqual({ ...HUMAN, perRecipientGapMs: 0 });
    expect(storedPacing(null)).toBe('off');
    expect(storedPacing('human')).toBe('human');
    expect(storedPacing({ minGapMs: 'soon' })).toBe('off');
  });
});
