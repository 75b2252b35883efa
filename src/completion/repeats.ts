// What the document already holds is not suggested again. After Tab accepts an answer the editor asks at once for
// the next completion, and a model readily answers the same thing again (an instruction paragraph that now ends in
// its answer looks like an input to it). Pure functions over the text before the cursor.

/** A completion the pipeline showed: the text before the cursor at that time (its tail) and the inserted text. */
export interface ShownCompletion {
  before: string;
  text: string;
}

/** How much of the text before a shown completion is remembered to recognise it in the document. */
export const SHOWN_CONTEXT_CHARS = 200;

export function rememberShown(prefix: string, text: string): ShownCompletion {
  return { before: prefix.slice(-SHOWN_CONTEXT_CHARS), text };
}

/**
 * True when the text before the cursor ends with the shown completion, right where it was shown (accepted with
 * Tab, or typed): trailing spaces and line breaks after it do not count (Enter after accepting).
 */
export function followsShown(prefix: string, shown: ShownCompletion | undefined): boolean {
  if (!shown || !shown.text.trim()) return false;
  const taken = (shown.before + shown.text).trimEnd();
  return prefix.trimEnd().endsWith(taken);
}

/** True when `completion` says again, line for line, what the shown completion inserted. */
export function repeatsShown(completion: string, shown: ShownCompletion): boolean {
  return completion.trim() !== '' && completion.trim() === shown.text.trim();
}

/** The last line of the text before the cursor (the instruction paragraph's last line at its end). */
export function currentLine(prefix: string): string {
  return prefix.slice(prefix.lastIndexOf('\n') + 1);
}

/**
 * An instruction paragraph that already ends in this answer: the answer for the paragraph equals its own last line
 * (the answer was accepted or typed there before), so showing it on the next line would write it twice.
 */
export function answerRepeatsLine(answer: string, prefix: string): boolean {
  const line = currentLine(prefix).trim();
  return line !== '' && answer.trim() === line;
}
