// The completion pipeline, top to bottom (Continue-style): selection → prefilter → prompt → cache → prefill and
// debounce → generate (with the request's AbortSignal, until the line's end or the latency budget) → abort check →
// postprocess → cache → repeats. No vscode import: the inline provider, the CLI, the bench and the tests all drive
// this same class.
import { type GenerationDeadline, toLastCompleteWord, wallClock } from '../inference/stop';
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
  /** The clock (default wallClock: the engine's deadline is on it, and so is CompletionRequest.changedAt). */
  now?: () => number;
}

export { toLastCompleteWord };

/** A request's `changedAt` older than this was not what prompted it (a cursor move, the suggest widget's selection
 * with the document unchanged): the budget counts from the call then. VS Code asks ~50 ms after a change. */
const STALE_CHANGE_MS = 1000;
/** Hand-off times (engine's end → the completion returned) kept to plan with, and the guess before any is known. */
const HANDOFF_SAMPLES = 16;
const HANDOFF_GUESS_MS = 5;

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
  /** Of the last generated completion: milliseconds past the latency budget it was returned (0: on time), and the
   * hand-off time (engine's end → returned) the engine was told to plan with. */
  lastLateMs?: number;
  lastHandoffMs?: number;
  /** Generated completions returned after their budget (the first complete word took longer). */
  late: number;
  /** Prefill requests sent during the debounce. */
  prefills: number;
}

export type GenerationEnd = 'complete' | 'budget' | 'engine';

export class CompletionPipeline {
  readonly cache: CompletionCache;
  readonly stats: PipelineStats = { requests: 0, generations: 0, cacheHits: 0, prefills: 0, late: 0 };
  private readonly debouncer: Debouncer;
  private readonly now: () => number;
  /** The generation in flight; a newer one aborts it (the engine serves one request at a time). */
  private inflight: AbortController | undefined;
  /** The prefill sent for the latest keystroke (a newer one aborts it: dropped while queued, reused once run), its
   * prompt, and a promise that settles when the engine is done with it. */
  private prefilling: { ctl: AbortController; prompt: string; done: Promise<unknown> } | undefined;
  /** The last completion shown per document (uri), to recognise it once it is in the text (repeats.ts). */
  private readonly shown = new Map<string, ShownCompletion>();
  /** Recent hand-off times: from the engine's end to the completion returned (the worker's message, postprocess). */
  private readonly handoffs: number[] = [];

  constructor(private readonly deps: PipelineDeps) {
    this.cache = deps.cache ?? new CompletionCache();
    this.now = deps.now ?? wallClock;
    this.debouncer = deps.debouncer ?? new Debouncer({ now: this.now });
  }

  /** Forget cached completions and wake waiting requests (adapter or settings changed). */
  reset(): void {
    this.cache.clear();
    this.shown.clear();
    this.debouncer.cancelAll();
    this.inflight?.abort();
    this.prefilling?.ctl.abort();
  }

  /**
   * The document changed (the keystroke itself; VS Code asks for a completion ~50 ms later): the prompt for the text
   * at the change goes to the engine at once, so the request that follows finds it prefilled or under way. Only with
   * an engine already loaded (`active`), and only what that request would prefill (no suggest widget item: its
   * prompt differs, though its start is shared and reused all the same).
   */
  prefillAtChange(request: CompletionRequest, active: ActiveGenerator): void {
    const settings = this.deps.settings();
    if (settings.debounceMs <= 0 || request.trigger === 'invoke' || request.selected) return;
    if (prefilter(request, settings, this.deps.maxDocumentChars)) return;
    const built = buildPrompt(request, active.adapter, { tokenBudget: this.deps.tokenBudget ?? 384 });
    if (!built) return;
    if (built.kind === 'template-instruction' && followsShown(request.prefix, this.shown.get(request.uri))) return;
    if (this.cache.get(cacheScope(active.adapter, settings, request), request.prefix, request.offset ?? request.prefix.length)) return;
    this.prefill(active.generator, built.prompt);
  }

  /** One request from keystroke to completion; undefined when nothing should be shown (see stats.lastSkip). */
  async complete(request: CompletionRequest, signal?: AbortSignal): Promise<Completion | undefined> {
    const called = this.now();
    // The budget counts from the keystroke that led here (VS Code asks ~50 ms later), not from this call.
    const changedAt = request.trigger !== 'invoke' ? request.changedAt : undefined;
    const t0 = changedAt !== undefined && changedAt <= called && called - changedAt < STALE_CHANGE_MS ? changedAt : called;
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
    // from it. Only the latest request survives the debounce. It counts from the keystroke; after a pause it ends
    // once the prefill is done; with a budget, the adapted delay takes at most half of it.
    const budget = settings.latencyBudgetMs;
    if (req.trigger !== 'invoke') {
      // the prefill sent at the document change for this very prompt, if any; else one now
      const early = this.prefilling?.prompt === built.prompt && !this.prefilling.ctl.signal.aborted ? this.prefilling.done : undefined;
      if (early) this.inflight?.abort();
      const prefilled = settings.debounceMs > 0 ? (early ?? this.prefill(active.generator, built.prompt)) : undefined;
      const waited = await this.debouncer.wait(settings.debounceMs, signal, { since: t0 + loadMs, ready: prefilled, maxMs: budget > 0 ? budget / 2 : undefined });
      if (!waited) return skip(signal?.aborted ? 'aborted' : 'debounced');
    }

    // 5. generate, tied to the request's signal; streaming stops as soon as the postprocessed result is final (the
    // line's end in single-line mode). The engine starts no step that would show the text after the budget (its
    // step-time p90 plus the hand-off), except to reach the first complete word (up to half the budget later).
    const ppc = postprocessContext(req, built, settings);
    // Nothing complete by the budget: up to half the budget more for the first complete word, counted from the
    // budget's end or from now if the generation starts later (a long prefill, a busy machine).
    const due = t0 + loadMs + budget;
    const deadline: GenerationDeadline | undefined = budget > 0 ? { at: due, handoffMs: this.handoffMs(), lateUntil: Math.max(due, this.now()) + budget / 2 } : undefined;
    // its prefill has served (the generation is queued after it)
    if (this.prefilling?.prompt === built.prompt) this.prefilling = undefined;
    const tg = this.now();
    let raw: string;
    let timings: GenerateResult['timings'];
    let tokenEnds: number[] = [];
    let cut = false;
    try {
      const out = await this.generate(active.generator, built, settings, ppc, deadline, signal);
      if (out === undefined) return skip('aborted'); // partial text: never shown, never cached
      ({ text: raw, timings } = out);
      this.stats.lastEnd = out.end;
      tokenEnds = out.tokenEnds;
      cut = out.end === 'budget';
    } catch (err) {
      if (signal?.aborted || isAbortError(err)) return skip('aborted');
      this.deps.onError?.(err);
      return skip('error');
    }
    const engineMs = this.now() - tg;
    this.stats.generations++;

    // 6. abort check: a cancelled request's result is never shown (but a complete one may serve the next request;
    // a text cut by the budget is complete up to its last word, a greedy answer's true beginning). Cut by the
    // budget, the last word may go on: it is left out, unless it is all there is (one long word, past the late limit).
    const text = (cut && postprocess(toLastCompleteWord(raw), ppc)) || postprocess(raw, ppc);
    this.stats.lastTokens = { streamed: tokenEnds.length, shown: tokenEnds.filter(end => end <= text.length).length };
    if (text) this.cache.set(scope, req.prefix, offset, built.lead + text);
    if (signal?.aborted) return skip('aborted');

    // 7. postprocessed result
    if (!text) return skip(raw.trim() === '' ? 'blank' : 'duplicate');
    const c = deliver({ insertText: built.lead + text, cached: false, engineMs, prompt: built.prompt, timings });
    const end = this.now();
    if (timings?.endedAt !== undefined) this.recordHandoff(end - timings.endedAt);
    if (c && deadline) {
      this.stats.lastLateMs = Math.max(0, end - deadline.at);
      this.stats.lastHandoffMs = deadline.handoffMs;
      if (end > deadline.at) this.stats.late++;
    }
    return c;
  }

  /** The hand-off time to plan with: the 90th percentile of the recent ones (a guess before any is known). */
  private handoffMs(): number {
    if (this.handoffs.length === 0) return HANDOFF_GUESS_MS;
    const s = [...this.handoffs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.ceil(0.9 * s.length) - 1)]!;
  }

  private recordHandoff(ms: number): void {
    // A clock step (or a test's clock) must not poison the plan.
    if (!(ms >= 0 && ms < 1000)) return;
    this.handoffs.push(ms);
    if (this.handoffs.length > HANDOFF_SAMPLES) this.handoffs.shift();
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
   * starts from it. The ghost text in progress is for an older text: it stops. Settles when the engine is done
   * with it (or dropped it). */
  private prefill(generator: Generator, prompt: string): Promise<unknown> {
    this.inflight?.abort();
    this.prefilling?.ctl.abort();
    const ctl = new AbortController();
    this.stats.prefills++;
    // An engine failure shows up in the generation that follows; a prefill only ever saves time.
    const done = generator.generate(prompt, { maxTokens: 0, temperature: 0, signal: ctl.signal }).catch(() => undefined);
    // Kept after it ran: the request that follows the change finds it done.
    this.prefilling = { ctl, prompt, done };
    return done;
  }

  /**
   * Returns the raw generated text, or undefined when the request was aborted (partial text is discarded). Stops
   * the engine and answers at once (without waiting for its step in flight) when the text is complete. The engine
   * itself keeps the deadline (finishReason 'deadline': end 'budget').
   */
  private async generate(
    generator: Generator, built: BuiltPrompt, settings: CompletionSettings, ppc: PostprocessContext, deadline: GenerationDeadline | undefined, signal?: AbortSignal,
  ): Promise<{ text: string; timings: GenerateResult['timings']; end: GenerationEnd; tokenEnds: number[] } | undefined> {
    this.inflight?.abort();
    const ctl = new AbortController();
    this.inflight = ctl;
    const onAbort = (): void => ctl.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    let streamed = '';
    /** Where each streamed token ends in the healed text (diagnostics: stats.lastTokens). */
    const tokenEnds: number[] = [];
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
        deadline,
        onToken: (t: string) => {
          if (early) return;
          streamed += t;
          const text = applyHeal(streamed, built.heal);
          tokenEnds.push(text.length);
          if (isComplete(text, ppc)) stop(text, 'complete');
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
      return { text: applyHeal(done.text, built.heal), timings: done.timings, end: done.finishReason === 'deadline' ? 'budget' : 'engine', tokenEnds };
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
