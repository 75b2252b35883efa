// Debounce where only the latest request survives: every call supersedes the ones still waiting.
// Optionally adaptive (like Tabby): while the user types faster than the configured delay, wait a little longer
// than their typing interval so that a burst still costs one generation; never longer than maxMs.

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
    this.now = opts.now ?? (() => performance.now());
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
   * call arrives or the signal aborts.
   */
  wait(baseMs: number, signal?: AbortSignal): Promise<boolean> {
    const t = this.now();
    const gap = t - this.lastCall;
    this.lastCall = t;
    // Only gaps within a burst say something about the typing rhythm. A pause ends the burst: the keystroke after it
    // gets the base delay (a one-character edit after a pause is not held for an old rhythm), the next ones adapt.
    if (gap < 1000) this.avgInterval = this.avgInterval === undefined ? gap : this.avgInterval * 0.7 + gap * 0.3;
    else this.avgInterval = undefined;
    // A newer call supersedes the one still waiting: it resolves false at once.
    this.pending?.();
    const ms = this.delayFor(baseMs);
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
    });
  }

  /** Marks every waiting call as superseded (e.g. the adapter changed). */
  cancelAll(): void {
    this.pending?.();
  }
}
