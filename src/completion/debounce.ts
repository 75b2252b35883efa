// Debounce where only the latest request survives: every call supersedes the ones still waiting.
// Optionally adaptive (like Tabby): while the user types faster than the configured delay, wait a little longer
// than their typing interval so that a burst still costs one generation; never longer than maxMs. The delay counts
// from the keystroke, and after a pause it ends as soon as the engine has taken in the new text (`ready`).
import { wallClock } from '../inference/stop';

export interface DebounceOptions {
  /** Adapt to the typing rhythm (default true). */
  adaptive?: boolean;
  /** Upper bound for the adapted delay (default 2x the configured delay, at most 1000 ms). */
  maxMs?: number;
  now?: () => number;
}

export class Debouncer {
  private pending: (() => void) | undefined;
  private lastCall = -Infinity;
  private avgInterval: number | undefined;
  private readonly now: () => number;

  constructor(private readonly opts: DebounceOptions = {}) {
    this.now = opts.now ?? wallClock;
  }

  /** The delay the next call would wait, given the configured base delay. */
  delayFor(baseMs: number): number {
    if (this.opts.adaptive === false || this.avgInterval === undefined || baseMs <= 0) return baseMs;
    const max = this.opts.maxMs ?? Math.min(1000, baseMs * 2);
    // Typing faster than the delay: the delay already covers the gap. Slightly slower: stretch to 1.5x the gap.
    return Math.max(baseMs, Math.min(max, this.avgInterval * 1.5));
  }

  /**
   * Resolves true after the delay when this call is still the latest and not aborted; false as soon as a newer
   * call arrives or the signal aborts. `since`: when the keystroke happened (default now; the delay counts from
   * it). `ready`: settles when the engine has prefilled the new text; after a pause (no typing rhythm) the wait
   * ends then if that is sooner: the delay only saves work in a burst, and the next keystroke aborts what started.
   * `maxMs`: the adapted delay's bound for this call (never below baseMs).
   */
  wait(baseMs: number, signal?: AbortSignal, opts: { since?: number; ready?: PromiseLike<unknown>; maxMs?: number } = {}): Promise<boolean> {
    const now = this.now();
    const t = opts.since ?? now;
    const gap = t - this.lastCall;
    // The same keystroke asked again (VS Code asks once more when the suggest widget opens) is no rhythm.
    if (gap !== 0) {
      this.lastCall = t;
      // Only gaps within a burst say something about the typing rhythm. A pause ends the burst: the keystroke after
      // it gets the base delay (a one-character edit after a pause is not held for an old rhythm), the next adapt.
      if (gap < 1000) this.avgInterval = this.avgInterval === undefined ? gap : this.avgInterval * 0.7 + gap * 0.3;
      else this.avgInterval = undefined;
    }
    const afterPause = this.avgInterval === undefined;
    // A newer call supersedes the one still waiting: it resolves false at once.
    this.pending?.();
    // `maxMs` bounds the adapted delay (not the base one): the latency budget leaves time to decode.
    const ms = Math.max(0, Math.min(this.delayFor(baseMs), Math.max(baseMs, opts.maxMs ?? Infinity)) - Math.max(0, now - t));
    return new Promise(resolve => {
      if (signal?.aborted) return resolve(false);
      const finish = (ok: boolean): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (this.pending === supersede) this.pending = undefined;
        resolve(ok && !signal?.aborted);
      };
      const onAbort = (): void => finish(false);
      const supersede = (): void => finish(false);
      this.pending = supersede;
      signal?.addEventListener('abort', onAbort, { once: true });
      const timer = setTimeout(() => finish(true), ms);
      if (afterPause && opts.ready) {
        opts.ready.then(
          () => finish(true),
          () => finish(true),
        );
      }
    });
  }

  /** Marks every waiting call as superseded (e.g. the adapter changed). */
  cancelAll(): void {
    this.pending?.();
  }
}
