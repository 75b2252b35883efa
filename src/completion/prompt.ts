// Prompt building: the document prefix within a token budget, or, for an adapter tuned on instructions, the
// adapter's own training template. Pure functions; the pipeline calls buildPrompt() once per request.
import type { AdapterInfo, CompletionRequest, PromptTemplate } from './types';
import { renderPrompt as renderTemplate } from '../protocol/template';

export interface BuiltPrompt {
  /** What the engine sees. */
  prompt: string;
  /** Text shown before the generated text (e.g. "\n" or the response prefix), never sent to the engine twice. */
  lead: string;
  /** Stop sequences for this prompt (the next template turn). */
  stop: string[];
  /**
   * Token healing: trailing spaces/tabs cut from a raw prefix prompt. Byte-level BPE glues a space to the next word
   * (" a"), so a prompt ending in a bare space is one the model never saw; it generates the space back and the
   * pipeline removes it (applyHeal).
   */
  heal?: string;
  kind: 'prefix' | 'template-answer' | 'template-instruction';
}

export interface PromptOptions {
  /** Most tokens the prompt may take. */
  tokenBudget: number;
  /** Most lines taken as an instruction block. */
  maxInstructionLines?: number;
}

/** Rough count when the adapter's tokenizer is not at hand: byte-level BPE on code averages ~3 chars per token. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 3);
}

function counter(adapter: AdapterInfo): (text: string) => number {
  return adapter.countTokens ?? estimateTokens;
}

export function buildPrompt(req: CompletionRequest, adapter: AdapterInfo, opts: PromptOptions): BuiltPrompt | undefined {
  if (adapter.instructionTuned && adapter.template) return buildTemplatePrompt(req, adapter, adapter.template, opts);
  return buildPrefixPrompt(req, adapter, opts);
}

/**
 * The tail of the document prefix that fits the budget. The cut is snapped to a line start and to a coarse grid
 * of absolute offsets, so that while the user types the prompt start stays put and the engine can reuse the KV
 * cache of the previous prompt (it prefills only the new tokens).
 */
export function buildPrefixPrompt(req: CompletionRequest, adapter: AdapterInfo, opts: PromptOptions): BuiltPrompt | undefined {
  const count = counter(adapter);
  const text = clipPrefix(req.prefix, req.offset ?? req.prefix.length, opts.tokenBudget, count);
  if (text.trim() === '') return undefined; // nothing to condition on
  const heal = /[ \t]+$/.exec(text)?.[0] ?? '';
  return heal ? { prompt: text.slice(0, -heal.length), lead: '', stop: [], kind: 'prefix', heal } : { prompt: text, lead: '', stop: [], kind: 'prefix' };
}

/** Removes from the generated text the whitespace the prompt lost to token healing (as much of it as matches). */
export function applyHeal(raw: string, heal: string | undefined): string {
  if (!heal) return raw;
  let i = 0;
  while (i < heal.length && i < raw.length && raw[i] === heal[i]) i++;
  return raw.slice(i);
}

export function clipPrefix(prefix: string, offset: number, tokenBudget: number, count: (t: string) => number): string {
  const total = count(prefix);
  if (total <= tokenBudget) return prefix;
  const base = offset - prefix.length; // absolute offset of prefix[0]
  // Chars per token of this text, quantized to powers of 1.25 so the window does not move with every keystroke.
  const cpt = Math.min(8, Math.max(1, prefix.length / total));
  const budgetChars = Math.floor(tokenBudget * 1.25 ** Math.floor(Math.log(cpt) / Math.log(1.25)));
  const grid = Math.max(64, Math.floor(budgetChars / 5));
  // Start on the grid at or after (cursor - 80% of the budget); the window is then 60..80% of the budget.
  let start = Math.ceil((offset - Math.floor(budgetChars * 0.8)) / grid) * grid - base;
  start = Math.max(0, Math.min(prefix.length, start));
  start = snapToLineStart(prefix, start);
  let text = prefix.slice(start);
  // The estimate may be off (dense text): drop whole lines until the budget holds, then characters.
  while (text.length > 0 && count(text) > tokenBudget) {
    const nl = text.indexOf('\n');
    text = nl >= 0 && nl < text.length - 1 ? text.slice(nl + 1) : text.slice(Math.ceil(text.length / 4));
  }
  return text;
}

function snapToLineStart(text: string, at: number): number {
  if (at === 0 || text[at - 1] === '\n') return at;
  const nl = text.indexOf('\n', at);
  return nl < 0 ? at : nl + 1;
}

/** The literal text a rendered template prompt starts with ("Human: " for the default template). */
export function templateLead(template: PromptTemplate): string {
  const brace = template.prompt.indexOf('{');
  return (brace < 0 ? template.prompt : template.prompt.slice(0, brace)).trimStart();
}

/** Renders the template like the trainer does (src/protocol/template.ts, parity-tested with the trainer). */
export { renderTemplate };

/**
 * Instruction-tuned adapters (the manifest says so) only know "template prompt → answer":
 * - the cursor is in an answer (the text before it has the response prefix after the last template turn, e.g. the
 *   user typed "Human: …\n\nAssistant: ") → the turn is the prompt, as is, and the model continues the answer;
 * - else, at the end of a non-blank line, the current paragraph is the instruction (first line = instruction, the
 *   rest = input, as in the training rows) → prompt rendered with the template; the answer goes on the next line
 *   (or after the response prefix when the user writes the turn in template form, "Human: …").
 */
export function buildTemplatePrompt(req: CompletionRequest, adapter: AdapterInfo, template: PromptTemplate, opts: PromptOptions): BuiltPrompt | undefined {
  const count = counter(adapter);
  const lead = templateLead(template);
  const resp = template.response_prefix;
  const stop = lead.trim() ? ['\n' + lead.trim()] : [];
  const prefix = req.prefix;

  // 1) In an answer: a response marker after the last turn marker (or, for templates without a turn marker, the
  //    text ends in the response marker).
  const marker = lead.trim();
  const respMark = resp.trim();
  const turn = marker ? prefix.lastIndexOf(marker) : -1;
  const respAt = respMark ? prefix.lastIndexOf(respMark) : -1;
  const endsInResp = respMark !== '' && prefix.trimEnd().endsWith(respMark);
  if (respAt >= 0 && respAt > turn && (turn >= 0 || endsInResp)) {
    let prompt = turn >= 0 ? prefix.slice(turn) : prefix;
    let shownLead = '';
    // "…Assistant:" without the template's trailing space: complete the marker first, so the model sees its format.
    if (prefix.endsWith(respMark) && !prefix.endsWith(resp)) {
      shownLead = resp.slice(resp.lastIndexOf(respMark) + respMark.length);
      prompt += shownLead;
    }
    prompt = clipPrefix(prompt, req.offset ?? prefix.length, opts.tokenBudget, count);
    return { prompt, lead: shownLead, stop, kind: 'template-answer' };
  }

  // 2) At the end of a line of an instruction paragraph.
  const eol = req.suffix.indexOf('\n');
  const restOfLine = eol < 0 ? req.suffix : req.suffix.slice(0, eol);
  if (restOfLine.trim() !== '') return undefined;
  const lines = prefix.split('\n');
  if ((lines[lines.length - 1] ?? '').trim() === '') return undefined;
  const maxLines = opts.maxInstructionLines ?? 20;
  let first = lines.length - 1;
  while (first > 0 && lines.length - first < maxLines && lines[first - 1]!.trim() !== '') first--;
  let block = lines.slice(first).map(l => l.replace(/\r$/, ''));
  // A turn written in template form ("Human: …"): the turn starts at its marker, and the answer follows the
  // response prefix, so the document stays a well-formed transcript.
  let shownLead = '\n';
  let markerLine = -1;
  if (lead.trim()) for (let i = block.length - 1; i >= 0 && markerLine < 0; i--) if (block[i]!.trimStart().startsWith(lead.trim())) markerLine = i;
  if (markerLine >= 0) {
    block = block.slice(markerLine);
    block[0] = block[0]!.trimStart().slice(lead.trim().length).trimStart();
    shownLead = resp;
  }
  const instruction = (block[0] ?? '').trim();
  const input = block.slice(1).join('\n').trim();
  if (!instruction && !input) return undefined;
  let prompt = renderTemplate(template, { instruction, input, prompt: [instruction, input].filter(Boolean).join('\n') });
  if (count(prompt) > opts.tokenBudget) {
    // Keep the instruction and the template frame; shorten the input from its start.
    const frame = count(renderTemplate(template, { instruction, input: '' }));
    const clipped = clipPrefix(input, input.length, Math.max(1, opts.tokenBudget - frame), count);
    prompt = renderTemplate(template, { instruction, input: clipped, prompt: [instruction, clipped].filter(Boolean).join('\n') });
  }
  return { prompt, lead: shownLead, stop, kind: 'template-instruction' };
}

