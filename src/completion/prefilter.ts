// Cheap checks that decide, before any prompt or generation work, whether a request deserves a completion.
import type { CompletionRequest, CompletionSettings, SkipReason } from './types';

/** Documents larger than this get no completions (reading and tokenizing them per keystroke costs too much). */
export const MAX_DOCUMENT_CHARS = 1_000_000;

/** Whether completions are on for a language: its own entry wins, else "*", else on. */
export function languageEnabled(languages: Record<string, boolean> | undefined, languageId: string): boolean {
  if (!languages) return true;
  if (Object.hasOwn(languages, languageId)) return languages[languageId] !== false;
  if (Object.hasOwn(languages, '*')) return languages['*'] !== false;
  return true;
}

/** The rest of the cursor's line may hold only closers, punctuation or spaces (like Copilot: `foo(|)` completes). */
const TRAILING_OK = /^[\s)\]}>"'`;:,.]*$/;

/** True when the cursor sits inside a word or before real text on its line. */
export function midWord(suffix: string): boolean {
  const eol = suffix.indexOf('\n');
  const restOfLine = eol < 0 ? suffix : suffix.slice(0, eol);
  if (TRAILING_OK.test(restOfLine.replace(/\r$/, ''))) return false;
  // Something substantial follows: a word character right after the cursor is the classic mid-word case, and any
  // other text is an insertion in the middle of a line, which a left-to-right model cannot fit either.
  return true;
}

/** Returns why the request must be skipped, or undefined when it may go on. */
export function prefilter(req: CompletionRequest, settings: CompletionSettings, maxChars = MAX_DOCUMENT_CHARS): SkipReason | undefined {
  if (!settings.enabled) return 'disabled';
  if (!languageEnabled(settings.languages, req.languageId)) return 'language';
  const length = req.documentLength ?? req.prefix.length + req.suffix.length;
  if (length > maxChars) return 'large-file';
  if (midWord(req.suffix)) return 'mid-word';
  return undefined;
}
