// Postprocessing as small pure functions over the generated text; postprocess() chains them in order.
// Each returns the (possibly shortened) text; '' means "show nothing".

/** Cuts at the first stop sequence. */
export function cutAtStops(text: string, stops: readonly string[]): string {
  let end = text.length;
  for (const s of stops) {
    if (!s) continue;
    const i = text.indexOf(s);
    if (i >= 0 && i < end) end = i;
  }
  return text.slice(0, end);
}

/**
 * Single-line mode: the rest of the current line. When the cursor ends a non-blank line and the model starts a
 * new line, the next line is the completion (like Copilot after `def f():`), leading newline kept.
 */
export function stopAtLineEnd(text: string, linePrefix: string): string {
  if (linePrefix.trim() !== '') {
    const m = /^(\r?\n)+/.exec(text);
    if (m) {
      const rest = text.slice(m[0].length);
      const nl = rest.indexOf('\n');
      const line = (nl < 0 ? rest : rest.slice(0, nl)).replace(/\r$/, '');
      return line.trim() === '' ? '' : m[0].replace(/(\r?\n)+/, '\n') + line;
    }
  }
  const nl = text.indexOf('\n');
  return (nl < 0 ? text : text.slice(0, nl)).replace(/\r$/, '');
}

function indentOf(line: string): number {
  return /^[ \t]*/.exec(line)![0].replace(/\t/g, '    ').length;
}

/** Index of the line that ends the block (it is not part of it, except a closing bracket), or -1. */
function blockEnd(lines: readonly string[], base: number): number {
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line.trim() === '' || indentOf(line) < base) return i;
  }
  return -1;
}

/**
 * Multi-line mode: stop at the end of the block the cursor is in: at a blank line, or at a line indented less
 * than the cursor's line (a closing bracket at that lower indent is kept: it closes the block).
 */
export function stopAtBlockEnd(text: string, linePrefix: string): string {
  const lines = text.split('\n');
  const end = blockEnd(lines, indentOf(linePrefix));
  if (end < 0) return text.replace(/\s+$/, '');
  const kept = lines.slice(0, end);
  if (lines[end]!.trim() !== '' && /^\s*[)\]}]/.test(lines[end]!)) kept.push(lines[end]!.replace(/\r$/, ''));
  return kept.join('\n').replace(/\s+$/, '');
}

/**
 * Small models loop: the same line over and over, or a short unit repeated at the end ("foo foo foo foo").
 * Keeps the first occurrence.
 */
export function trimRepetition(text: string): string {
  // Repeated consecutive non-blank lines: keep the first of each run.
  const lines = text.split('\n');
  const kept: string[] = [];
  for (const l of lines) {
    const prev = kept[kept.length - 1];
    if (prev !== undefined && l.trim() !== '' && l.trim() === prev.trim()) break;
    kept.push(l);
  }
  let out = kept.join('\n');
  // A unit with a letter in it, repeated at least 3 times in a row at the end over 12+ characters: keep one.
  // (Units without letters are left alone: "----" rules and "1000000" are legitimate.)
  for (let unit = 1; unit <= 40 && unit * 3 <= out.length; unit++) {
    const tail = out.slice(out.length - unit);
    if (!/\p{L}/u.test(tail)) continue;
    let n = 1;
    while (out.length - (n + 1) * unit >= 0 && out.slice(out.length - (n + 1) * unit, out.length - n * unit) === tail) n++;
    if (n >= 3 && n * unit >= 12) {
      out = out.slice(0, out.length - (n - 1) * unit);
      break;
    }
  }
  return out;
}

/** Drops what the text after the cursor already has: a completion ending in `)` before an existing `)`. */
export function trimSuffixOverlap(text: string, suffix: string): string {
  const eol = suffix.indexOf('\n');
  const restOfLine = (eol < 0 ? suffix : suffix.slice(0, eol)).replace(/\r$/, '');
  const rest = restOfLine.trimEnd();
  if (!rest) return text;
  for (let k = Math.min(rest.length, text.length); k > 0; k--) {
    if (text.endsWith(rest.slice(0, k))) return text.slice(0, text.length - k);
  }
  return text;
}

/** '' when the completion would insert nothing visible. */
export function dropBlank(text: string): string {
  return text.trim() === '' ? '' : text;
}

/** '' when the completion repeats the text right after the cursor, or the line just above it, verbatim. */
export function dropDuplicate(text: string, prefix: string, suffix: string): string {
  const t = text.trim();
  if (!t) return '';
  if (suffix.trimStart().startsWith(t)) return '';
  const lines = prefix.split('\n');
  const above = lines.length >= 2 ? lines[lines.length - 2]!.trim() : '';
  const current = lines[lines.length - 1]!;
  // Only whole-line completions can duplicate the line above.
  if (current.trim() === '' && above !== '' && t === above) return '';
  return text;
}

export interface PostprocessContext {
  prefix: string;
  suffix: string;
  mode: 'singleLine' | 'multiLine';
  stop?: readonly string[];
}

/** The chain, in order. Returns '' when nothing should be shown. */
export function postprocess(raw: string, ctx: PostprocessContext): string {
  const linePrefix = ctx.prefix.slice(ctx.prefix.lastIndexOf('\n') + 1);
  let text = cutAtStops(raw, ctx.stop ?? []);
  text = ctx.mode === 'singleLine' ? stopAtLineEnd(text, linePrefix) : stopAtBlockEnd(text, linePrefix);
  text = trimRepetition(text);
  text = text.replace(/[ \t]+$/, '');
  text = trimSuffixOverlap(text, ctx.suffix);
  text = dropBlank(text);
  text = dropDuplicate(text, ctx.prefix, ctx.suffix);
  return text;
}

/**
 * Whether streaming can stop early: the text already holds everything postprocess() would keep (a finished line
 * in single-line mode, a finished block in multi-line mode, or a stop sequence).
 */
export function isComplete(text: string, ctx: PostprocessContext): boolean {
  if ((ctx.stop ?? []).some(s => s && text.includes(s))) return true;
  const linePrefix = ctx.prefix.slice(ctx.prefix.lastIndexOf('\n') + 1);
  if (ctx.mode === 'singleLine') {
    const body = linePrefix.trim() !== '' ? text.replace(/^(\r?\n)+/, '') : text;
    // The leading newline(s) are part of the completion; a newline after real content ends it.
    return body !== text ? body.includes('\n') && body.trim() !== '' : text.includes('\n');
  }
  // Multi-line: complete once a line that ends the block is known for sure (followed by a newline, or with
  // content, so its indentation is final).
  const lines = text.split('\n');
  const end = blockEnd(lines, indentOf(linePrefix));
  return end >= 0 && (end < lines.length - 1 || lines[end]!.trim() !== '');
}
