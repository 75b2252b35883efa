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
