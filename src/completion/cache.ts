// LRU cache of shown completions, keyed by the text before the cursor. Typing the characters of a shown
// suggestion keeps it: when the new prefix is an old prefix plus the start of its completion, the rest is returned
// without a generation (and without the debounce).

/** Prefixes are compared on their last KEY_CHARS characters plus their absolute length (the cursor offset). */
export const KEY_CHARS = 4096;

interface Entry {
  scope: string;
  /** Last KEY_CHARS characters of the text before the cursor. */
  tail: string;
  /** Cursor offset (the full prefix length). */
  offset: number;
  completion: string;
}

export interface CacheHit {
  /** What is left to insert at the new cursor. */
  completion: string;
  /** Characters of the cached completion the user has typed since (0 = exact hit). */
  typed: number;
}

export class CompletionCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly capacity = 200) {}

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
  }

  /**
   * scope: everything besides the prefix that changes the answer (adapter, mode, rest of the line...).
   * prefix: the text before the cursor (or its tail); offset: the cursor's absolute offset.
   */
  set(scope: string, prefix: string, offset: number, completion: string): void {
    if (!completion) return;
    const tail = prefix.slice(-KEY_CHARS);
    const key = keyOf(scope, tail, offset);
    this.entries.delete(key);
    this.entries.set(key, { scope, tail, offset, completion });
    while (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value as string);
  }

  get(scope: string, prefix: string, offset: number): CacheHit | undefined {
    const tail = prefix.slice(-KEY_CHARS);
    const exact = this.entries.get(keyOf(scope, tail, offset));
    if (exact) return this.touch(keyOf(scope, tail, offset), exact, 0);
    // Typed-through: newest entries first.
    const all = [...this.entries.entries()];
    for (let i = all.length - 1; i >= 0; i--) {
      const [key, e] = all[i]!;
      if (e.scope !== scope) continue;
      const typed = offset - e.offset;
      if (typed <= 0 || typed >= e.completion.length || typed > prefix.length) continue;
      if (prefix.slice(prefix.length - typed) !== e.completion.slice(0, typed)) continue;
      if (prefix.slice(0, prefix.length - typed).slice(-KEY_CHARS) !== e.tail) continue;
      // Store the shortened suggestion as its own entry too, so the next keystroke is an exact hit away.
      const hit = this.touch(key, e, typed);
      this.set(scope, prefix, offset, hit.completion);
      return hit;
    }
    return undefined;
  }

  private touch(key: string, e: Entry, typed: number): CacheHit {
    this.entries.delete(key);
    this.entries.set(key, e);
    return { completion: e.completion.slice(typed), typed };
  }
}

function keyOf(scope: string, tail: string, offset: number): string {
  return `${scope}\u0000${offset}\u0000${tail}`;
}
