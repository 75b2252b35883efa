// The completion pipeline, top to bottom (Continue-style): selection → prefilter → prompt → cache → debounce →
// generate (with the request's AbortSignal) → abort check → postprocess → cache → repeats. No vscode import: the
// inline provider, the CLI, the bench and the tests all drive this same class.
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
}

export class CompletionPipeline {
  readonly cache: CompletionCache;
  readonly stats: PipelineStats = { requests: 0, generations: 0, cacheHits: 0 };
  private readonly debouncer: Debouncer;
  private readonly now: () => number;
  /** The generation in flight; a newer one aborts it (the engine serves one request at a time). */
  private inflight: AbortController | undefined;
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
    try {
      active = await this.deps.getGenerator();
    } catch (err) {
      this.deps.onError?.(err);
      return skip('error');
    }
    if (!active) return skip('no-adapter');
    if (signal?.aborted) return skip('aborted');
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

    // 4. debounce: only the latest request survives
    if (req.trigger !== 'invoke' && !(await this.debouncer.wait(settings.debounceMs, signal))) {
      return skip(signal?.aborted ? 'aborted' : 'debounced');
    }

    // 5. generate, tied to the request's signal; streaming stops early once the postprocessed result is final
    const ppc = postprocessContext(req, built, settings);
    const tg = this.now();
    let raw: string;
    let timings: GenerateResult['timings'];
    try {
      const out = await this.generate(active.generator, built, settings, ppc, signal);
      if (out === undefined) return skip('aborted'); // partial text: never shown, never cached
      ({ text: raw, timings } = out);
    } catch (err) {
      if (signal?.aborted || isAbortError(err)) return skip('aborted');
      this.deps.onError?.(err);
      return skip('error');
    }
    const engineMs = this.now() - tg;
    this.stats.generations++;

    // 6. abort check: a cancelled request's result is never shown (but a complete one may serve the next request)
    const text = postprocess(raw, ppc);
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

  /** Returns the raw generated text, or undefined when the request was aborted (partial text is discarded). */
  private async generate(generator: Generator, built: BuiltPrompt, settings: CompletionSettings, ppc: PostprocessContext, signal?: AbortSignal): Promise<{ text: string; timings: GenerateResult['timings'] } | undefined> {
    this.inflight?.abort();
    const ctl = new AbortController();
    this.inflight = ctl;
    const onAbort = (): void => ctl.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    let streamed = '';
    let early = false;
    try {
      const res = await generator.generate(built.prompt, {
        maxTokens: settings.maxTokens,
        temperature: settings.temperature,
        stop: built.stop,
        signal: ctl.signal,
        onToken: (t: string) => {
          streamed += t;
          if (!early && isComplete(applyHeal(streamed, built.heal), ppc)) {
            early = true;
            ctl.abort();
          }
        },
      }).catch((err): GenerateResult => {
        // Our own early stop may surface as an AbortError; the streamed text is the complete result then.
        if (early && isAbortError(err)) return { text: streamed, finishReason: 'stop' };
        throw err;
      });
      if (early) return { text: applyHeal(streamed, built.heal), timings: res.timings };
      // Aborted by the request or by a newer generation: the text is partial.
      if (res.finishReason === 'aborted') return undefined;
      // Finished (even if the request was cancelled meanwhile): complete text, which the caller may cache.
      return { text: applyHeal(res.text, built.heal), timings: res.timings };
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (this.inflight === ctl) this.inflight = undefined;
    }
  }
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
