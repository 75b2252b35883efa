// Stop sequences over streamed text. Text that might be the start of a stop sequence is held back, so
// a consumer never sees (then has to retract) part of a stop string.

export class StopMatcher {
  private pending = ''; // received but not yet released
  private readonly maxLen: number;

  constructor(private readonly stops: readonly string[]) {
    this.stops = stops.filter(s => s.length > 0);
    this.maxLen = Math.max(0, ...this.stops.map(s => s.length));
  }

  /** Feeds new text; returns the text that is now safe to emit and whether a stop sequence was hit. */
  push(text: string): { emit: string; stopped: boolean } {
    this.pending += text;
    if (this.stops.length === 0) {
      const emit = this.pending;
      this.pending = '';
      return { emit, stopped: false };
    }
    let hit = -1;
    for (const s of this.stops) {
      const i = this.pending.indexOf(s);
      if (i >= 0 && (hit < 0 || i < hit)) hit = i;
    }
    if (hit >= 0) {
      const emit = this.pending.slice(0, hit);
      this.pending = '';
      return { emit, stopped: true };
    }
    // Keep the longest tail that is a proper prefix of some stop sequence.
    let keep = 0;
    for (let k = Math.min(this.maxLen - 1, this.pending.length); k > 0; k--) {
      const tail = this.pending.slice(this.pending.length - k);
      if (this.stops.some(s => s.startsWith(tail))) {
        keep = k;
        break;
      }
    }
    const emit = this.pending.slice(0, this.pending.length - keep);
    this.pending = this.pending.slice(this.pending.length - keep);
    return { emit, stopped: false };
  }

  /** At the end of generation the held-back text was not a stop sequence after all. */
  flush(): string {
    const rest = this.pending;
    this.pending = '';
    return rest;
  }
}

/**
 * The end of a single-line completion in streamed text: a line break ('first'), or a line break after other text
 * ('afterText': leading line breaks belong to the completion). Nothing is held back: a line break is final.
 */
export class LineEndMatcher {
  private seenText = false;

  constructor(private readonly mode: 'first' | 'afterText') {}

  /** Feeds new text; returns the part before the line's end and whether the line ended. */
  push(text: string): { emit: string; stopped: boolean } {
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!;
      if (c === '\n') {
        if (this.mode === 'first' || this.seenText) return { emit: text.slice(0, i).replace(/\r$/, ''), stopped: true };
      } else if (c !== '\r') this.seenText = true;
    }
    return { emit: text, stopped: false };
  }
}

/** Milliseconds on a clock every thread of the process shares (performance.now() counts from each thread's own
 * start): a deadline set on the extension host's thread means the same moment in the inference worker. */
export function wallClock(): number {
  return performance.timeOrigin + performance.now();
}

/** The text without its last word when that word may go on (the next token could continue it): up to the last
 * character that is not a letter, digit or underscore. A text ending in a space or punctuation is complete as is. */
export function toLastCompleteWord(text: string): string {
  return text.replace(/[\p{L}\p{N}_]+$/u, '');
}

/**
 * A time limit for a generation (ghost text promised to the user by a moment): on the `wallClock`.
 * The decode loop starts a model step only when its predicted end plus `handoffMs` is within `at`. When nothing
 * complete would be shown by then (the text has no complete word yet), it goes on until the first complete word,
 * but starts no step that would end past `lateUntil`.
 */
export interface GenerationDeadline {
  /** When the text must be in the caller's hands (wallClock ms). */
  at: number;
  /** How long the text takes from the engine's last step to the screen (measured by the caller). */
  handoffMs: number;
  /** The latest end for a step while the text has no complete word yet (wallClock ms; >= at). */
  lateUntil: number;
}

/** Until a drafted step has been timed, it is planned as this many one-token steps: a step of 4 new tokens on
 * bloom-560m int8 measured 1.34-1.44x a one-token step (docs/engine.md, "Drafted tokens"). */
const DRAFTED_STEP_GUESS = 1.5;

/** Durations of recent model steps, and the step time to plan with: their 90th percentile (a step that takes longer
 * than predicted is what makes a promised time slip, so the plan is not the median). One-token steps and drafted
 * steps (a greedy token and a few drafts) are kept apart. */
export class StepTimes {
  private readonly recent: number[] = [];
  private readonly drafted: number[] = [];
  /** A forward of several tokens (a prefill): an upper bound while no one-token step has been timed yet. */
  private fallback: number | undefined;

  constructor(private readonly keep = 20) {}

  record(tokens: number, ms: number): void {
    if (tokens !== 1) {
      this.fallback = ms;
      return;
    }
    this.push(this.recent, ms);
  }

  recordDrafted(ms: number): void {
    this.push(this.drafted, ms);
  }

  /** The 90th percentile of the recent one-token steps (nearest rank); without any, the last prefill; else 0. */
  predict(): number {
    if (this.recent.length === 0) return this.fallback ?? 0;
    return p90(this.recent);
  }

  /** As `predict`, for a drafted step. */
  predictDrafted(): number {
    return this.drafted.length ? p90(this.drafted) : DRAFTED_STEP_GUESS * this.predict();
  }

  private push(list: number[], ms: number): void {
    list.push(ms);
    if (list.length > this.keep) list.shift();
  }
}

function p90(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(0.9 * s.length) - 1)]!;
}

/** Whether to start the next model step, given the text so far. */
export function stepFits(deadline: GenerationDeadline, now: number, stepMs: number, text: string): boolean {
  const end = now + stepMs + deadline.handoffMs;
  if (end <= deadline.at) return true;
  // Nothing complete to show yet: one more step, as long as it ends before the last moment.
  return toLastCompleteWord(text).trim() === '' && end <= deadline.lateUntil;
}
