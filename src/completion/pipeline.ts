// The completion pipeline, top to bottom (Continue-style): selection → prefilter → prompt → cache → prefill and
// debounce → generate (with the request's AbortSignal, until the line's end or the latency budget) → abort check →
// postprocess → cache → repeats. No vscode import: the inline provider, the CLI, the bench and the tests all drive
// this same class.
import { CompletionCache } from './cache';
import { Debouncer } from './debounce';
import { isComplete, postprocess, type PostprocessContext } from './postprocess';
import { prefilter } from './prefilter';
import { applyHeal, buildPrompt, type BuiltPrompt } from './prompt';
import { answerRepeatsLine, followsShown, rememberShown, repeatsShown, type ShownCompletion } from './repeats';
import { applySelection, extendSelection } from './selection';
import type { AdapterInfo, Completion, CompletionRequest, CompletionSettings, GenerateResult, Generator, SkipReason } from './types';

/** What the pipeline generates with right now; undefined = no adapter loaded (nothing is shown). */
export interface ActiveGenerator {
  generator: Generator;
  adapter: AdapterInfo;
}

export interface PipelineDeps {
  /** Resolves the generator for a request (loading the adapter lazily is the caller's business). */
  getGenerator: () => Promise<ActiveGenerator | undefined> | ActiveGenerator | undefined;
  settings: () => CompletionSettings;
  /** Called when a generation fails for a reason other than cancellation (engine crash...). */
  onError?: (err: unknown) => void;
  /** Prompt token budget (default 384). */
  tokenBudget?: number;
  /** Documents larger than this get nothing (default prefilter.MAX_DOCUMENT_CHARS). */
  maxDocumentChars?: number;
  debouncer?: Debouncer;
  cache?: CompletionCache;
  now?: () => number;
}

export interface PipelineStats {
  requests: number;
  generations: number;
  cacheHits: number;
  lastSkip?: SkipReason;
  /** Of the last generated (not cached) completion. */
  lastLatencyMs?: number;
  lastEngineMs?: number;
  /** Why the last generation ended: the line or block was complete, the latency budget was spent, or the engine
   * finished (max tokens, EOS, a stop sequence). */
  lastEnd?: GenerationEnd;
  /** Tokens the engine streamed for the last generation, and how many of them the shown text holds whole. */
  lastTokens?: { streamed: number; shown: number };
  /** Prefill requests sent during the debounce. */
  prefills: number;
}

export type GenerationEnd = 'complete' | 'budget' | 'engine';

export class CompletionPipeline {
  readonly cache: CompletionCache;
  readonly stats: PipelineStats = { requests: 0, generations: 0, cacheHits: 0, prefills: 0 };
  private readonly debouncer: Debouncer;
  private readonly now: () => number;
  /** The generation in flight; a newer one aborts it (the engine serves one request at a time). */
  private inflight: AbortController | undefined;
  /** The prefill sent for the latest keystroke (a newer one aborts it: dropped while queued, reused once run). */
  private prefilling: AbortController | undefined;
  /** The last completion shown per document (uri), to recognise it once it is in the text (repeats.ts). */
  private readonly shown = new Map<string, ShownCompletion>();

  constructor(private readonly deps: PipelineDeps) {
    this.cache = deps.cache ?? new CompletionCache();
    this.debouncer = deps.debouncer ?? new Debouncer();
    this.now = deps.now ?? (() => performance.now());
  }

  /** Forget cached completions and wake waiting requests (adapter or settings changed). */
  reset(): void {
    this.cache.clear();
    this.shown.clear();
    this.debouncer.cancelAll();
    this.inflight?.abort();
    this.prefilling?.abort();
  }

  /** One request from keystroke to completion; undefined when nothing should be shown (see stats.lastSkip). */
  async complete(request: CompletionRequest, signal?: AbortSignal): Promise<Completion | undefined> {
    const t0 = this.now();
    this.stats.requests++;
    const skip = (why: SkipReason): undefined => {
      this.stats.lastSkip = why;
      return undefined;
    };
    const settings = this.deps.settings();

    // 0. the suggest widget is open: answer as if its selected item were accepted (the shown item extends it)
    const sel = request.selected;
    const req = sel ? applySelection(request, sel) : request;
    if (!req) return skip('selection');

    // 1. prefilter
    const filtered = prefilter(req, settings, this.deps.maxDocumentChars);
    if (filtered) return skip(filtered);

    // 2. prompt (needs the adapter: its template decides the prompt's form)
    let active: ActiveGenerator | undefined;
    const tLoad = this.now();
    try {
      active = await this.deps.getGenerator();
    } catch (err) {
      this.deps.onError?.(err);
      return skip('error');
    }
    if (!active) return skip('no-adapter');
    if (signal?.aborted) return skip('aborted');
    // Loading the engine (the first request) is not the pipeline's to save: it does not count against the budget.
    const loadMs = this.now() - tLoad;
    const built = buildPrompt(req, active.adapter, { tokenBudget: this.deps.tokenBudget ?? 384 });
    if (!built) return skip('no-prompt');
    // An instruction paragraph that ends in the answer just shown (accepted with Tab) is answered: the model would
    // only answer it again.
    const shown = this.shown.get(req.uri);
    const afterShown = followsShown(req.prefix, shown);
    if (afterShown && built.kind === 'template-instruction') return skip('answered');
    const deliver = (c: Omit<Completion, 'latencyMs'>): Completion | undefined => {
      const answer = c.insertText;
      if (afterShown && repeatsShown(answer, shown!)) return skip('repeat');
      if (built.kind === 'template-instruction' && answerRepeatsLine(answer, req.prefix)) return skip('repeat');
      this.remember(req, answer);
      return this.finish(t0, sel ? { ...c, insertText: extendSelection(sel, answer), replaceBefore: sel.replaceBefore, replaceAfter: sel.replaceAfter } : c);
    };

    // 3. cache (an exact or typed-through hit answers at once, no debounce)
    const offset = req.offset ?? req.prefix.length;
    const scope = cacheScope(active.adapter, settings, req);
    const hit = this.cache.get(scope, req.prefix, offset);
    if (hit) {
      this.stats.cacheHits++;
      return deliver({ insertText: hit.completion, cached: true, engineMs: 0, prompt: built.prompt });
    }

    // 4. prefill, then debounce: the engine computes the new text's KV while the debounce waits, so decoding starts
    // from it. Only the latest request survives the debounce.
    if (req.trigger !== 'invoke') {
      if (settings.debounceMs > 0) this.prefill(active.generator, built.prompt);
      if (!(await this.debouncer.wait(settings.debounceMs, signal))) return skip(signal?.aborted ? 'aborted' : 'debounced');
    }

    // 5. generate, tied to the request's signal; streaming stops as soon as the postprocessed result is final (the
    // line's end in single-line mode), or at the last complete word once the latency budget is spent (half the
    // budget later without one: at the last token)
    const ppc = postprocessContext(req, built, settings);
    const budget = settings.latencyBudgetMs;
    const deadline = budget > 0 ? { at: t0 + loadMs + budget, lastAt: t0 + loadMs + budget * 1.5 } : undefined;
    const tg = this.now();
    let raw: string;
    let timings: GenerateResult['timings'];
    let tokenEnds: number[] = [];
    try {
      const out = await this.generate(active.generator, built, settings, ppc, deadline, signal);
      if (out === undefined) return skip('aborted'); // partial text: never shown, never cached
      ({ text: raw, timings } = out);
      this.stats.lastEnd = out.end;
      tokenEnds = out.tokenEnds;
    } catch (err) {
      if (signal?.aborted || isAbortError(err)) return skip('aborted');
      this.deps.onError?.(err);
      return skip('error');
    }
    const engineMs = this.now() - tg;
    this.stats.generations++;

    // 6. abort check: a cancelled request's result is never shown (but a complete one may serve the next request;
    // a text cut by the budget is complete up to its last word, a greedy answer's true beginning)
    const text = postprocess(raw, ppc);
    this.stats.lastTokens = { streamed: tokenEnds.length, shown: tokenEnds.filter(end => end <= text.length).length };
    if (text) this.cache.set(scope, req.prefix, offset, built.lead + text);
    if (signal?.aborted) return skip('aborted');

    // 7. postprocessed result
    if (!text) return skip(raw.trim() === '' ? 'blank' : 'duplicate');
    return deliver({ insertText: built.lead + text, cached: false, engineMs, prompt: built.prompt, timings });
  }

  private remember(req: CompletionRequest, text: string): void {
    this.shown.delete(req.uri);
    this.shown.set(req.uri, rememberShown(req.prefix, text));
    // A handful of open documents is all that matters; the oldest goes first.
    if (this.shown.size > 64) this.shown.delete(this.shown.keys().next().value as string);
  }

  private finish(t0: number, c: Omit<Completion, 'latencyMs'>): Completion {
    const latencyMs = this.now() - t0;
    // The status bar shows the last generated completion's latency (cache hits are ~0 ms and say nothing).
    if (!c.cached) {
      this.stats.lastLatencyMs = latencyMs;
      this.stats.lastEngineMs = c.engineMs;
    }
    this.stats.lastSkip = undefined;
    return { ...c, latencyMs };
  }

  /** Sends the prompt to the engine to compute its KV (no token generated); the generation after the debounce
   * starts from it. The ghost text in progress is for an older text: it stops. */
  private prefill(generator: Generator, prompt: string): void {
    this.inflight?.abort();
    this.prefilling?.abort();
    const ctl = new AbortController();
    this.prefilling = ctl;
    this.stats.prefills++;
    // An engine failure shows up in the generation that follows; a prefill only ever saves time.
    generator
      .generate(prompt, { maxTokens: 0, temperature: 0, signal: ctl.signal })
      .catch(() => undefined)
      .finally(() => {
        if (this.prefilling === ctl) this.prefilling = undefined;
      });
  }

  /**
   * Returns the raw generated text, or undefined when the request was aborted (partial text is discarded). Stops
   * the engine and answers at once (without waiting for its step in flight) when the text is complete, or when the
   * deadline would pass before the next token and the text up to its last complete word shows something. Past
   * `lastAt` without a complete word (one long identifier), the text as it stands (a token boundary) is shown.
   */
  private async generate(
    generator: Generator, built: BuiltPrompt, settings: CompletionSettings, ppc: PostprocessContext, deadline: { at: number; lastAt: number } | undefined, signal?: AbortSignal,
  ): Promise<{ text: string; timings: GenerateResult['timings']; end: GenerationEnd; tokenEnds: number[] } | undefined> {
    this.inflight?.abort();
    const ctl = new AbortController();
    this.inflight = ctl;
    const onAbort = (): void => ctl.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    let streamed = '';
    /** Where each streamed token ends in the healed text (diagnostics: stats.lastTokens). */
    const tokenEnds: number[] = [];
    let lastTokenAt: number | undefined;
    let tokenGap = 0;
    let early: { text: string; end: GenerationEnd } | undefined;
    let stopEarly: () => void = () => {};
    const stoppedEarly = new Promise<void>(resolve => (stopEarly = resolve));
    const stop = (text: string, end: GenerationEnd): void => {
      early = { text, end };
      ctl.abort();
      stopEarly();
    };
    try {
      const run = generator.generate(built.prompt, {
        maxTokens: settings.maxTokens,
        temperature: settings.temperature,
        stop: built.stop,
        signal: ctl.signal,
        stopAtNewline: ppc.mode === 'singleLine' ? (currentLine(ppc.prefix).trim() !== '' ? 'afterText' : 'first') : undefined,
        onToken: (t: string) => {
          if (early) return;
          const now = this.now();
          // the next token is expected as long after this one as this one came after the last
          if (lastTokenAt !== undefined) tokenGap = now - lastTokenAt;
          lastTokenAt = now;
          streamed += t;
          const text = applyHeal(streamed, built.heal);
          tokenEnds.push(text.length);
          if (isComplete(text, ppc)) return stop(text, 'complete');
          if (deadline && now + tokenGap >= deadline.at) {
            const words = toLastCompleteWord(text);
            if (postprocess(words, ppc)) return stop(words, 'budget');
            if (now + tokenGap >= deadline.lastAt && postprocess(text, ppc)) stop(text, 'budget');
          }
        },
      });
      // After an early stop the engine's answer (aborted, or an error) no longer matters.
      run.catch(() => undefined);
      const res = await Promise.race([run, stoppedEarly]);
      if (early) return { text: early.text, timings: undefined, end: early.end, tokenEnds };
      const done = res as GenerateResult;
      // Aborted by the request or by a newer generation: the text is partial.
      if (done.finishReason === 'aborted') return undefined;
      // Finished (even if the request was cancelled meanwhile): complete text, which the caller may cache.
      return { text: applyHeal(done.text, built.heal), timings: done.timings, end: 'engine', tokenEnds };
    } catch (err) {
      // Our own early stop may surface as an AbortError; the streamed text is the result then.
      if (early) return { text: early.text, timings: undefined, end: early.end, tokenEnds };
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (this.inflight === ctl) this.inflight = undefined;
    }
  }
}

function currentLine(prefix: string): string {
  return prefix.slice(prefix.lastIndexOf('\n') + 1);
}

/** The text without its last word when that word may go on (the next token could continue it): up to the last
 * character that is not a letter, digit or underscore. */
export function toLastCompleteWord(text: string): string {
  return text.replace(/[\p{L}\p{N}_]+$/u, '');
}

function postprocessContext(req: CompletionRequest, built: BuiltPrompt, settings: CompletionSettings): PostprocessContext {
  if (built.kind === 'template-instruction') {
    // The answer goes on a new line: it continues the rendered prompt, and what follows is the next lines.
    const nl = req.suffix.indexOf('\n');
    return { prefix: built.prompt, suffix: nl < 0 ? '' : req.suffix.slice(nl + 1), mode: settings.mode, stop: built.stop };
  }
  return { prefix: req.prefix, suffix: req.suffix, mode: settings.mode, stop: built.stop };
}

/** Everything besides the prefix that changes the answer. */
function cacheScope(adapter: AdapterInfo, settings: CompletionSettings, req: CompletionRequest): string {
  const nl = req.suffix.indexOf('\n');
  const restOfLine = nl < 0 ? req.suffix : req.suffix.slice(0, nl);
  return [adapter.key, settings.mode, settings.maxTokens, settings.temperature, restOfLine].join('\u0001');
}

export function isAbortError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && ((err as { name?: string }).name === 'AbortError' || (err as { code?: string }).code === 'ABORT_ERR');
}
