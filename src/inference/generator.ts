// The decode loop (inside the worker): tokenize, reuse the cached KV of the previous prompt where the
// token ids agree, prefill the rest in chunks, then sample token by token with streaming, stop
// sequences, EOS, max tokens, the line's end, cancellation and the deadline checked before every model step. Greedy
// decoding takes the graph's argmax (next_tokens) and fetches no logits after the prefill; it drafts tokens from the
// text (draft.ts) and keeps those the model agrees with, several tokens for one run. A prompt whose tokens are all
// cached (a prefill-only request for it came first) starts decoding from the kept logits, or greedily from the kept
// token.
import type { DecoderModel } from './decoder';
import { DRAFT_TOKENS, lookupDraft } from './draft';
import { EngineError } from './errors';
import { type KvCache, commonPrefixLength, truncateKv } from './kv';
import type { FinishReason, GenerateParams, GenerateResult } from './messages';
import { createRng, sampleToken } from './sampling';
import { LineEndMatcher, StepTimes, StopMatcher, stepFits, wallClock } from './stop';
import { StreamDecoder, type TextTokenizer } from './tokenizer';

export interface GenerateHooks {
  /** Polled before every model step; true stops the request with finishReason 'aborted'. */
  aborted(): boolean;
  onText?(text: string): void;
}

/** Prompt tokens per prefill run: bounds activations (the graph returns the last position's logits only) and how
 * long an abort waits. */
const PREFILL_CHUNK = 512;

/**
 * When drafting pays: a drafted run costs ~1.35x a one-token run (bloom-560m int8, 3 drafts), so it gains when the
 * model takes more than ~0.35 drafts a run on average. The average is kept over recent drafted runs (this model, this
 * user's text); below the bar the engine drafts only every PROBE_EVERY-th chance, to notice when the text repeats
 * again.
 */
const DRAFTS_TAKEN_BAR = 0.35;
const PROBE_EVERY = 16;

/** What decoding starts from after a model run: the graph's greedy token, and the logits when they were fetched. */
interface StepOutput {
  logits: Float32Array | null;
  next: number;
}

export class Generator {
  /** Token ids whose KV is in `kv` (after the prefix), from the last request. */
  private cachedIds: number[] = [];
  private kv: KvCache;
  /** The run's output after the last cached position, or null when unknown. */
  private last: StepOutput | null = null;
  /** This engine's recent step times: a deadline is kept by predicting the next step from them. */
  readonly steps = new StepTimes();
  /** Drafts the model took per drafted run, a moving average over recent runs (starts at 1: a few misses stop it). */
  private draftsTaken = 1;
  private draftChancesSkipped = 0;
  private readonly now: () => number;

  /** `now`: the clock deadlines are on (wallClock; a test's own clock). */
  constructor(private readonly model: DecoderModel, private readonly tokenizer: TextTokenizer, opts: { now?: () => number } = {}) {
    this.kv = model.prefix;
    this.now = opts.now ?? wallClock;
  }

  /** One model run, timed for the step prediction. `withLogits` false: only the graph's argmax leaves onnxruntime. */
  private async forward(ids: number[], kv: KvCache, reserve: number, withLogits: boolean): Promise<{ logits: Float32Array | null; next: number; kv: KvCache }> {
    const t = this.now();
    const out = withLogits ? await this.model.forward(ids, kv, reserve) : { logits: null, ...(await this.model.forwardGreedy(ids, kv, reserve)) };
    this.steps.record(ids.length, this.now() - t);
    return out;
  }

  /** A greedy run of [next, ...draft]: keeps the drafts the model agrees with (their KV stays in the cache) and returns
   * them with the token that follows. */
  private async forwardDrafted(next: number, draft: number[], kv: KvCache, reserve: number): Promise<{ accepted: number[]; next: number; kv: KvCache }> {
    const t = this.now();
    const out = await this.model.forwardDrafted([next, ...draft], kv, reserve);
    this.steps.recordDrafted(this.now() - t);
    let a = 0;
    while (a < draft.length && draft[a] === out.nexts[a]) a++;
    return { accepted: draft.slice(0, a), next: out.nexts[a]!, kv: truncateKv(out.kv, out.kv.length - (draft.length - a)) };
  }

  resetCache(): void {
    this.cachedIds = [];
    this.kv = this.model.prefix;
    this.last = null;
  }

  encode(text: string): number[] {
    return this.tokenizer.encode(text);
  }

  async generate(prompt: string, p: GenerateParams, hooks: GenerateHooks): Promise<GenerateResult> {
    validateParams(p);
    const m = this.model.manifest;
    const t0 = performance.now();
    let ids = this.tokenizer.encode(prompt);
    // The model needs at least one input token to produce logits.
    if (ids.length === 0) ids = [m.bos_token_id ?? m.eos_token_id ?? 0];

    // KV reuse: the longest common token prefix with the cached ids. At least one token is run, unless the whole
    // prompt is what is cached and what decoding starts from is kept (the prefill for this prompt already ran): its
    // logits, or for greedy decoding its next token.
    const common = p.reuseCache === false ? 0 : commonPrefixLength(this.cachedIds, ids);
    const greedy = !((p.temperature ?? 0) > 0);
    const kept = this.last !== null && (greedy || this.last.logits !== null);
    const allCached = common === ids.length && common === this.cachedIds.length && kept;
    const reused = allCached ? ids.length : Math.min(common, ids.length - 1);
    const prefixLen = m.prefix_length;
    let kv = reused > 0 ? truncateKv(this.kv, prefixLen + reused) : this.model.prefix;
    const reserve = prefixLen + ids.length + p.maxTokens;
    let step: StepOutput | null = allCached ? this.last : null;
    this.cachedIds = ids.slice(0, reused);
    this.kv = kv;
    this.last = step;

    const result = (finishReason: FinishReason, text: string, tokens: number[], tPrefill: number): GenerateResult => ({
      text,
      tokens,
      finishReason,
      timings: { prefillMs: tPrefill - t0, decodeMs: performance.now() - tPrefill, reusedTokens: reused, promptTokens: ids.length, generatedTokens: tokens.length, endedAt: this.now() },
    });

    for (let at = reused; at < ids.length; at += PREFILL_CHUNK) {
      if (hooks.aborted()) return result('aborted', '', [], performance.now());
      const part = ids.slice(at, at + PREFILL_CHUNK);
      // the prompt's last chunk keeps its logits (a later request for this prompt may sample); earlier chunks' are
      // overwritten anyway
      ({ kv, ...step } = await this.forward(part, kv, reserve, at + part.length === ids.length));
      this.cachedIds = ids.slice(0, at + part.length);
      this.kv = kv;
      this.last = step;
    }
    const tPrefill = performance.now();
    if (p.maxTokens === 0) return result('length', '', [], tPrefill);

    const rng = createRng(p.seed);
    const decoder = new StreamDecoder(this.tokenizer);
    const stopper = new StopMatcher(p.stop ?? []);
    const lineEnd = p.stopAtNewline ? new LineEndMatcher(p.stopAtNewline) : null;
    /** Stop sequences first, then the line's end. */
    const cut = (piece: { emit: string; stopped: boolean }): { emit: string; stopped: boolean } => {
      if (!lineEnd) return piece;
      const line = lineEnd.push(piece.emit);
      return line.stopped ? line : piece;
    };
    const tokens: number[] = [];
    let text = '';
    const emit = (s: string) => {
      if (!s) return;
      text += s;
      hooks.onText?.(s);
    };
    let finish: FinishReason = 'length';
    /** Drafted tokens the model agreed with: already in the cache, emitted before the run's own next token. */
    const accepted: number[] = [];
    for (;;) {
      const inCache = accepted.length > 0;
      const next = inCache ? accepted.shift()! : greedy ? step!.next : sampleToken(step!.logits!, { temperature: p.temperature!, topP: p.topP ?? 1 }, rng);
      if (next === m.eos_token_id && !p.ignoreEos) {
        finish = 'eos';
        break;
      }
      tokens.push(next);
      const { emit: out, stopped } = cut(stopper.push(decoder.push(next)));
      emit(out);
      if (stopped) {
        finish = 'stop';
        break;
      }
      if (tokens.length >= p.maxTokens) break;
      if (hooks.aborted()) {
        finish = 'aborted';
        break;
      }
      // the token after a drafted one is known already: no model run for it
      if (inCache) continue;
      let draft = greedy && p.draft !== false ? lookupDraft(this.cachedIds, Math.min(DRAFT_TOKENS, p.maxTokens - tokens.length - 1), next) : [];
      if (draft.length && this.draftsTaken < DRAFTS_TAKEN_BAR && ++this.draftChancesSkipped < PROBE_EVERY) draft = [];
      // The text goes to the user by the deadline: a step that would end too late is not started (a drafted one
      // gives way to a one-token step that fits).
      if (p.deadline && draft.length && !stepFits(p.deadline, this.now(), this.steps.predictDrafted(), text)) draft = [];
      if (p.deadline && !draft.length && !stepFits(p.deadline, this.now(), this.steps.predict(), text)) {
        finish = 'deadline';
        break;
      }
      if (draft.length) {
        const run = await this.forwardDrafted(next, draft, kv, reserve);
        this.draftsTaken = 0.8 * this.draftsTaken + 0.2 * run.accepted.length;
        this.draftChancesSkipped = 0;
        accepted.push(...run.accepted);
        kv = run.kv;
        step = { logits: null, next: run.next };
        this.cachedIds.push(next, ...run.accepted);
        this.kv = kv;
        this.last = step;
        continue;
      }
      ({ kv, ...step } = await this.forward([next], kv, reserve, !greedy));
      this.cachedIds.push(next);
      this.kv = kv;
      this.last = step;
    }
    if (finish !== 'stop') {
      const rest = cut(stopper.push(decoder.flush()));
      emit(rest.emit);
      if (rest.stopped) finish = 'stop';
      else {
        const tail = cut({ emit: stopper.flush(), stopped: false });
        emit(tail.emit);
        if (tail.stopped) finish = 'stop';
      }
    }
    return result(finish, text, tokens, tPrefill);
  }
}

export function validateParams(p: GenerateParams): void {
  const bad = (field: string, msg: string): never => {
    throw new EngineError('BAD_REQUEST', `generate option "${field}" ${msg}`, { field });
  };
  if (!Number.isInteger(p.maxTokens) || p.maxTokens < 0) bad('maxTokens', `must be an integer >= 0 (got ${p.maxTokens})`);
  if (p.temperature !== undefined && !(p.temperature >= 0 && Number.isFinite(p.temperature))) bad('temperature', `must be a number >= 0 (got ${p.temperature})`);
  if (p.topP !== undefined && !(p.topP > 0 && p.topP <= 1)) bad('topP', `must be in (0, 1] (got ${p.topP})`);
  if (p.draft !== undefined && typeof p.draft !== 'boolean') bad('draft', `must be true or false (got ${JSON.stringify(p.draft)})`);
  if (p.stop !== undefined && (!Array.isArray(p.stop) || p.stop.some(s => typeof s !== 'string'))) bad('stop', 'must be an array of strings');
  if (p.seed !== undefined && !Number.isInteger(p.seed)) bad('seed', `must be an integer (got ${p.seed})`);
  if (p.stopAtNewline !== undefined && p.stopAtNewline !== 'first' && p.stopAtNewline !== 'afterText') bad('stopAtNewline', `must be 'first' or 'afterText' (got ${JSON.stringify(p.stopAtNewline)})`);
  if (p.deadline !== undefined) {
    const d = p.deadline;
    const finite = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);
    if (typeof d !== 'object' || d === null || !finite(d.at) || !finite(d.handoffMs) || d.handoffMs < 0 || !finite(d.lateUntil) || d.lateUntil < d.at) {
      bad('deadline', `must be { at, handoffMs >= 0, lateUntil >= at } in milliseconds (got ${JSON.stringify(d)})`);
    }
  }
}
