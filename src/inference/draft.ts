// Drafts for greedy decoding taken from the text itself (prompt lookup): code repeats its context (names, arguments,
// whole lines), so the tokens that followed the latest earlier occurrence of the newest few tokens are a cheap guess
// at what comes next. The model checks every draft in one run (DecoderModel.forwardDrafted); greedy output is the same
// with or without them, only the number of runs changes.

/** Drafted tokens per run: a run of 4 new tokens costs 1.34-1.44x a one-token run on bloom-560m int8 (docs/engine.md). */
export const DRAFT_TOKENS = 3;

/** The lengths of the newest-token key looked up, longest first (a longer match is the likelier continuation). */
const KEY_LENGTHS = [3, 2];

/**
 * `max` tokens that followed the latest earlier occurrence of the last 3 (else 2) tokens of the text, or none. The text
 * is `history`, then `newest` when given (the decode loop's next token, not yet in its cached ids: no copy of them
 * per step). An occurrence close to the end runs into the newest tokens: the draft then repeats the period (`x x x`
 * -> `x x x`, `a, b, a, b` -> `a, b`), as a repeating text goes on.
 */
export function lookupDraft(history: readonly number[], max: number, newest?: number): number[] {
  if (max <= 0) return [];
  const length = history.length + (newest === undefined ? 0 : 1);
  const at = (i: number): number => (i < history.length ? history[i]! : newest!);
  for (const n of KEY_LENGTHS) {
    const key = length - n;
    if (key < 1) continue;
    for (let s = key - 1; s >= 0; s--) {
      let k = 0;
      while (k < n && at(s + k) === at(key + k)) k++;
      if (k === n) {
        const period = key - s;
        return Array.from({ length: max }, (_, i) => at(length - period + (i % period)));
      }
    }
  }
  return [];
}
