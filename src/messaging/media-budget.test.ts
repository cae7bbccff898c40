import { describe, expect, it } from 'vitest';
import { MediaBudget } from './media-budget.js';

describe('MediaBudget', () => {
  it('bounds images in flight per agent and in total, and frees a place on release (once)', () => {
    const sut = new MediaBudget({ perAgent: 2, total: 3 });
    const a1 = sut.take('a');
    const a2 = sut.take('a');
    expect(a1).not.toBeNull();
    expect(a2).not.toBeNull();
    expect(sut.take('a')).toBeNull(); // the agent's own bound
    const b1 = sut.take('b');
    expect(b1).not.toBeNull();
    expect(sut.take('c')).toBeNull(); // the process's bound
    a1?.();
    a1?.(); // twice frees one place, not two
    expect(sut.take('c')).not.toBeNull();
    expect(sut.take('a')).toBeNull();
    a2?.();
    expect(sut.take('a')).not.toBeNull(); // b, c and this one: the total is full again
    expect(sut.take('d')).toBeNull();
    b1?.();
    expect(sut.take('d')).not.toBeNull();
  });
});
