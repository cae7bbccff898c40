// The one clock: every now() and every timer of the service goes through it, so that tests move time instead of
// sleeping. The composition root builds the system clock; tests pass a FakeClock (src/__fixtures__/fake-clock.ts).

/** A scheduled callback. cancel() is safe after the callback ran, and twice. */
export interface Timer {
  cancel(): void;
}

export interface TimerOptions {
  /** The timer does not keep the process alive (Node's unref): for housekeeping, never for work someone awaits. */
  background?: boolean;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` once, `ms` from now. */
  setTimeout(fn: () => void, ms: number, options?: TimerOptions): Timer;
  /** Calls `fn` every `ms` until cancelled. */
  setInterval(fn: () => void, ms: number, options?: TimerOptions): Timer;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms, options) {
    const handle = setTimeout(fn, ms);
    if (options?.background) handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
  setInterval(fn, ms, options) {
    const handle = setInterval(fn, ms);
    if (options?.background) handle.unref();
    return { cancel: () => clearInterval(handle) };
  },
};
