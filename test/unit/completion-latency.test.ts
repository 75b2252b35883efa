// Keystroke → ghost text latency: the prefill sent during the debounce, the debounce and the budget counted from the
// keystroke, the stop at the line's end, and the deadline the decode loop keeps from its measured step times. The
// engine is stepped by hand (or a scripted model) and the clock is the test's own, so nothing here races a timer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Debouncer } from '../../src/completion/debounce';
import { CompletionPipeline, toLastCompleteWord } from '../../src/completion/pipeline';
import { DEFAULT_SETTINGS, type AdapterInfo, type CompletionRequest, type CompletionSettings, type GenerateOptions, type GenerateResult, type Generator } from '../../src/completion/types';
import type { DecoderModel } from '../../src/inference/decoder';
import { DRAFT_TOKENS } from '../../src/inference/draft';
import { Generator as DecodeLoop } from '../../src/inference/generator';
import { emptyKv, type KvCache } from '../../src/inference/kv';
import { LineEndMatcher, StepTimes, stepFits } from '../../src/inference/stop';
import { TextTokenizer } from '../../src/inference/tokenizer';

interface EngineCall {
  prompt: string;
  opts: GenerateOptions;
  /** Streams one token, as the worker's 'token' message would. */
  emit(text: string): void;
  /** Ends the request (the worker's 'result'); `timings.endedAt` as the worker stamps it. */
  finish(reason?: GenerateResult['finishReason'], timings?: { endedAt: number }): void;
}

/** An engine stepped by hand. Like the worker mid-step, an abort is only noticed at the next step the test makes
 * (finish('aborted')): a pipeline that waited for the engine after stopping it would hang here. */
class SteppedEngine implements Generator {
  readonly calls: EngineCall[] = [];
  private readonly waiters: Array<() => void> = [];
  generate(prompt: string, opts: GenerateOptions): Promise<GenerateResult> {
    return new Promise(resolve => {
      let text = '';
      this.calls.push({
        prompt,
        opts,
        emit: t => {
          text += t;
          opts.onToken?.(t);
        },
        finish: (reason = 'eos', t) => resolve({ text, finishReason: reason, timings: t && { prefillMs: 0, decodeMs: 0, reusedTokens: 0, promptTokens: 0, generatedTokens: 0, ...t } }),
      });
      for (const w of this.waiters.splice(0)) w();
    });
  }
  /** Resolves once `n` requests (prefills included) have reached the engine. */
  async called(n: number): Promise<void> {
    while (this.calls.length < n) await new Promise<void>(r => this.waiters.push(r));
  }
  get prefills(): EngineCall[] {
    return this.calls.filter(c => c.opts.maxTokens === 0);
  }
  get generations(): EngineCall[] {
    return this.calls.filter(c => c.opts.maxTokens > 0);
  }
}

/** The debounce, fired by the test. A newer wait supersedes the one before, as in Debouncer. */
class HandDebouncer extends Debouncer {
  private waiting: ((ok: boolean) => void) | undefined;
  /** The options of the last wait. */
  last: Parameters<Debouncer['wait']>[2];
  override wait(_ms: number, signal?: AbortSignal, opts?: Parameters<Debouncer['wait']>[2]): Promise<boolean> {
    this.last = opts;
    this.waiting?.(false);
    return new Promise(resolve => {
      this.waiting = resolve;
      signal?.addEventListener('abort', () => resolve(false), { once: true });
    });
  }
  fire(): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.(true);
  }
}

const adapter: AdapterInfo = { key: 'run-1', template: null, instructionTuned: false };
const request = (prefix: string, suffix = ''): CompletionRequest => ({ uri: 'file:///t.py', languageId: 'python', prefix, suffix });

function setup(over: Partial<CompletionSettings> = {}) {
  const engine = new SteppedEngine();
  const debouncer = new HandDebouncer();
  const clock = { t: 0 };
  const s: CompletionSettings = { ...DEFAULT_SETTINGS, latencyBudgetMs: 300, ...over };
  const pipeline = new CompletionPipeline({ getGenerator: () => ({ generator: engine, adapter }), settings: () => s, debouncer, now: () => clock.t });
  return { engine, debouncer, clock, pipeline };
}

test('a keystroke sends its prefill at once; a newer keystroke aborts it and the generation starts from the newest', async () => {
  const { engine, debouncer, pipeline } = setup();
  const first = pipeline.complete(request('total = a'));
  await engine.called(1);
  assert.deepEqual(engine.calls.map(c => [c.prompt, c.opts.maxTokens]), [['total = a', 0]], 'the prefill went out before the debounce ended');
  const second = pipeline.complete(request('total = ab'));
  await engine.called(2);
  assert.equal(engine.calls[0]!.opts.signal!.aborted, true, 'the older prefill is aborted (dropped if still queued)');
  assert.equal(engine.calls[1]!.opts.signal!.aborted, false);
  assert.equal(await first, undefined, 'the older request gave up in the debounce');
  engine.calls[0]!.finish('aborted');
  engine.calls[1]!.finish('length');
  debouncer.fire();
  await engine.called(3);
  const gen = engine.calls[2]!;
  assert.equal(gen.prompt, 'total = ab');
  assert.ok(gen.opts.maxTokens > 0);
  gen.emit('c + d');
  gen.finish();
  assert.equal((await second)?.insertText, 'c + d');
  assert.equal(pipeline.stats.prefills, 2);
  assert.equal(pipeline.stats.generations, 1);
});

test('the prefill sent at the document change serves the request VS Code sends after it (no second prefill)', async () => {
  const { engine, debouncer, clock, pipeline } = setup();
  const active = { generator: engine, adapter };
  pipeline.prefillAtChange({ ...request('total = a'), changedAt: 0 }, active);
  assert.deepEqual(engine.calls.map(c => [c.prompt, c.opts.maxTokens]), [['total = a', 0]], 'sent at the change');
  clock.t = 50;
  const pending = pipeline.complete({ ...request('total = a'), changedAt: 0 });
  await new Promise(r => setImmediate(r));
  assert.equal(engine.calls.length, 1, 'the request reuses it');
  assert.equal(debouncer.last?.since, 0);
  const ready = debouncer.last?.ready;
  let settled = false;
  void ready?.then(() => (settled = true));
  engine.calls[0]!.finish('length');
  await ready;
  assert.equal(settled, true, 'the debounce is told when that prefill is done');
  debouncer.fire();
  await engine.called(2);
  engine.calls[1]!.emit('b + c');
  engine.calls[1]!.finish();
  assert.equal((await pending)?.insertText, 'b + c');
  assert.equal(pipeline.stats.prefills, 1);

  // a typed-through prefix is answered from the cache: nothing to prefill; the suggest widget's item: its own prompt
  pipeline.prefillAtChange(request('total = ab'), active);
  pipeline.prefillAtChange({ ...request('total = x'), selected: { text: 'xs', replaceBefore: 1, replaceAfter: 0 } }, active);
  assert.equal(engine.calls.length, 2);
});

test('a keystroke stops the ghost text being generated for the text before it', async () => {
  const { engine, debouncer, pipeline } = setup();
  const first = pipeline.complete(request('x = '));
  await engine.called(1);
  debouncer.fire();
  await engine.called(2);
  const running = engine.generations[0]!;
  running.emit('compute');
  const second = pipeline.complete(request('x = c'));
  await engine.called(3);
  assert.equal(running.opts.signal!.aborted, true, 'the newer keystroke stopped it');
  running.finish('aborted');
  assert.equal(await first, undefined, 'partial text is not shown');
  assert.equal(engine.calls[2]!.opts.maxTokens, 0, "the newer keystroke's prefill");
  debouncer.fire();
  await engine.called(4);
  engine.calls[3]!.emit('ount');
  engine.calls[3]!.finish();
  assert.equal((await second)?.insertText, 'ount');
});

test('single-line: the engine is told to stop at the line end, and the answer does not wait for its step in flight', async () => {
  const { engine, debouncer, pipeline } = setup({ latencyBudgetMs: 0 });
  const pending = pipeline.complete(request('if ready:\n    '));
  await engine.called(1);
  debouncer.fire();
  await engine.called(2);
  const gen = engine.generations[0]!;
  assert.equal(gen.opts.stopAtNewline, 'first', 'a blank line prefix: the first line break ends it');
  gen.emit('start()');
  gen.emit('\n    wait(');
  // never finished: the engine is still in its next step
  const c = await pending;
  assert.equal(c?.insertText, 'start()');
  assert.equal(gen.opts.signal!.aborted, true);
  assert.equal(pipeline.stats.lastEnd, 'complete');

  // after `def f():` the completion is the next line: leading line breaks are kept
  const next = pipeline.complete(request('def f():'));
  await engine.called(3);
  debouncer.fire();
  await engine.called(4);
  assert.equal(engine.calls[3]!.opts.stopAtNewline, 'afterText');
  engine.calls[3]!.emit('\n    return 1');
  engine.calls[3]!.finish('stop');
  assert.equal((await next)?.insertText, '\n    return 1');
});

test('multi-line mode: no line-end stop in the engine; the block ends the stream', async () => {
  const { engine, debouncer, pipeline } = setup({ latencyBudgetMs: 0, mode: 'multiLine' });
  const pending = pipeline.complete(request('def f(x):\n    '));
  await engine.called(1);
  debouncer.fire();
  await engine.called(2);
  const gen = engine.generations[0]!;
  assert.equal(gen.opts.stopAtNewline, undefined);
  gen.emit('y = x + 1\n    return y\n');
  gen.emit('\ndef g');
  assert.equal((await pending)?.insertText, 'y = x + 1\n    return y');
});

test('latency budget: counted from the keystroke (changedAt), not from the call; the engine gets the deadline', async () => {
  const { engine, debouncer, clock, pipeline } = setup({ latencyBudgetMs: 300 });
  clock.t = 1000 + 50; // VS Code asks ~50 ms after the change
  const pending = pipeline.complete({ ...request('total = '), changedAt: 1000 });
  await engine.called(1);
  assert.equal(debouncer.last?.since, 1000, 'the debounce counts from the keystroke too');
  assert.equal(debouncer.last?.maxMs, 150, 'the adapted delay takes at most half the budget');
  assert.ok(debouncer.last?.ready, 'the prefill tells the debounce when the engine is ready');
  debouncer.fire();
  await engine.called(2);
  const gen = engine.generations[0]!;
  assert.deepEqual(gen.opts.deadline, { at: 1300, handoffMs: 5, lateUntil: 1450 }, 'a hand-off guess until one is measured');
  clock.t = 1290;
  gen.emit('a + b');
  gen.finish('eos');
  const c = await pending;
  assert.equal(c?.insertText, 'a + b');
  assert.equal(c?.latencyMs, 290, 'keystroke → ghost text');
  assert.equal(pipeline.stats.lastLateMs, 0);

  // a change long before the call (a cursor move asked again) or an explicit request: from the call
  clock.t = 9000;
  const stale = pipeline.complete({ ...request('count = '), changedAt: 1000 });
  await engine.called(3);
  debouncer.fire();
  await engine.called(4);
  assert.equal(engine.calls[3]!.opts.deadline?.at, 9300);
  engine.calls[3]!.finish('eos');
  await stale;
  const invoked = pipeline.complete({ ...request('count = n'), changedAt: 8990, trigger: 'invoke' });
  await engine.called(5);
  assert.equal(engine.calls[4]!.opts.deadline?.at, 9300, 'Alt+\\ : from the request');
  engine.calls[4]!.finish('eos');
  await invoked;
});

test('latency budget: the engine ended at the deadline: the text ends at its last complete word, cached and typed through', async () => {
  const { engine, debouncer, clock, pipeline } = setup({ latencyBudgetMs: 300 });
  const pending = pipeline.complete(request('def f(a, b):\n    '));
  await engine.called(1);
  debouncer.fire();
  await engine.called(2);
  const gen = engine.generations[0]!;
  gen.emit('result');
  gen.emit(' =');
  gen.emit(' comp'); // "comp" may go on
  clock.t = 280;
  gen.finish('deadline');
  const c = await pending;
  assert.equal(c?.insertText, 'result =');
  assert.equal(pipeline.stats.lastEnd, 'budget');
  assert.deepEqual(pipeline.stats.lastTokens, { streamed: 3, shown: 2 });
  // the cut text is a true beginning of the greedy answer: typing through it is answered from the cache
  const typed = await pipeline.complete(request('def f(a, b):\n    res'));
  assert.equal(typed?.cached, true);
  assert.equal(typed?.insertText, 'ult =');
});

test('latency budget: a first word that ends in punctuation is shown as it is; one long word past the late limit too', async () => {
  const { engine, debouncer, pipeline } = setup({ latencyBudgetMs: 300 });
  const first = pipeline.complete(request('value = '));
  await engine.called(1);
  debouncer.fire();
  await engine.called(2);
  engine.generations[0]!.emit('compute(');
  engine.generations[0]!.finish('deadline');
  assert.equal((await first)?.insertText, 'compute(', 'complete without the next token');

  const second = pipeline.complete(request('other = '));
  await engine.called(3);
  debouncer.fire();
  await engine.called(4);
  engine.generations[1]!.emit('veryLong');
  engine.generations[1]!.emit('Identifier'); // the engine stopped at lateUntil with no complete word
  engine.generations[1]!.finish('deadline');
  assert.equal((await second)?.insertText, 'veryLongIdentifier', 'the user still gets something');
});

test('latency budget: the hand-off time is measured (engine end → returned) and planned with at its 90th percentile', async () => {
  const engine = new SteppedEngine();
  const debouncer = new HandDebouncer();
  const clock = { t: 0 };
  const pipeline = new CompletionPipeline({ getGenerator: () => ({ generator: engine, adapter }), settings: () => ({ ...DEFAULT_SETTINGS, latencyBudgetMs: 300 }), debouncer, now: () => clock.t });
  const handoffs = [2, 3, 2, 4, 12, 3, 2, 3, 2, 3];
  for (const [i, handoff] of handoffs.entries()) {
    const pending = pipeline.complete(request(`x${i} = `));
    await engine.called(2 * i + 1);
    debouncer.fire();
    await engine.called(2 * i + 2);
    const gen = engine.calls[2 * i + 1]!;
    clock.t += 100;
    gen.emit('y');
    gen.finish('eos', { endedAt: clock.t - handoff });
    await pending;
  }
  const next = pipeline.complete(request('z = '));
  await engine.called(2 * handoffs.length + 1);
  debouncer.fire();
  await engine.called(2 * handoffs.length + 2);
  assert.equal(engine.calls.at(-1)!.opts.deadline?.handoffMs, 4, 'p90 of the last hand-offs (one 12 ms outlier in 10)');
  engine.calls.at(-1)!.finish('eos');
  await next;
});

test('latency budget: a completion returned after its budget is counted as late', async () => {
  const { engine, debouncer, clock, pipeline } = setup({ latencyBudgetMs: 300 });
  const pending = pipeline.complete(request('value = '));
  await engine.called(1);
  clock.t = 320; // a busy machine: the debounce ended after the budget
  debouncer.fire();
  await engine.called(2);
  assert.equal(engine.generations[0]!.opts.deadline?.lateUntil, 320 + 150, 'half the budget from the late start for a first word');
  clock.t = 340;
  engine.generations[0]!.emit('compute');
  engine.generations[0]!.emit('(');
  engine.generations[0]!.finish('deadline');
  assert.equal((await pending)?.insertText, 'compute(');
  assert.equal(pipeline.stats.late, 1);
  assert.equal(pipeline.stats.lastLateMs, 40);
});

test('latency budget: the engine load of the first request does not count; 0 = no budget', async () => {
  const engine = new SteppedEngine();
  const debouncer = new HandDebouncer();
  const clock = { t: 0 };
  let budget = 300;
  const pipeline = new CompletionPipeline({
    getGenerator: async () => {
      clock.t += 5000; // loading the export
      return { generator: engine, adapter };
    },
    settings: () => ({ ...DEFAULT_SETTINGS, latencyBudgetMs: budget }),
    debouncer,
    now: () => clock.t,
  });
  const first = pipeline.complete(request('x = '));
  await engine.called(1);
  assert.equal(debouncer.last?.since, 5000, 'the debounce starts after the load');
  debouncer.fire();
  await engine.called(2);
  assert.equal(engine.calls[1]!.opts.deadline?.at, 5300, 'within 300 ms of the keystroke, the load aside');
  engine.calls[1]!.emit('alpha + beta');
  engine.calls[1]!.finish();
  assert.equal((await first)?.insertText, 'alpha + beta');

  budget = 0;
  const second = pipeline.complete(request('y = '));
  await engine.called(3);
  assert.equal(debouncer.last?.maxMs, undefined);
  debouncer.fire();
  await engine.called(4);
  assert.equal(engine.calls[3]!.opts.deadline, undefined);
  engine.calls[3]!.emit('gamma * delta');
  engine.calls[3]!.finish();
  assert.equal((await second)?.insertText, 'gamma * delta');
});

test('debounce: counted from the keystroke; after a pause it ends when the prefill is done, in a burst it waits', async () => {
  const clock = { t: 0 };
  const d = new Debouncer({ now: () => clock.t });
  // A base delay no test run could reach: only `ready` (or supersession) can end these waits.
  const BASE = 600_000;
  let done!: () => void;
  const ready = new Promise<void>(r => (done = r));
  const afterPause = d.wait(BASE, undefined, { since: 0, ready });
  done();
  assert.equal(await afterPause, true, 'the first keystroke after a pause: the engine is ready, no need to wait');

  clock.t = 120; // the next key 120 ms later: a burst
  let done2!: () => void;
  const inBurst = d.wait(BASE, undefined, { since: 120, ready: new Promise<void>(r => (done2 = r)) });
  done2();
  const superseding = d.wait(BASE, undefined, { since: 240 });
  assert.equal(await inBurst, false, 'in a burst the prefill does not end the wait; the next keystroke supersedes it');
  d.cancelAll();
  assert.equal(await superseding, false);

  // the same keystroke asked twice is not a rhythm; the delay is what is left of it since the keystroke
  const e = new Debouncer({ now: () => clock.t });
  clock.t = 10_000;
  const a = e.wait(150, undefined, { since: 9_900 });
  const b = e.wait(150, undefined, { since: 9_900 });
  assert.equal(await a, false);
  clock.t = 10_200;
  assert.equal(e.delayFor(150), 150, 'no rhythm learned from one keystroke asked twice');
  assert.equal(await b, true, '50 ms left of 150');

  // the adapted delay is bounded by maxMs, never below the base
  const f = new Debouncer({ now: () => clock.t });
  for (const at of [20_000, 20_200, 20_400]) {
    clock.t = at;
    void f.wait(150, undefined, { since: at });
  }
  assert.equal(f.delayFor(150), 300, 'typing every 200 ms: 1.5x the rhythm, at most 2x the base');
  f.cancelAll();
});

test('toLastCompleteWord drops a word the next token could continue', () => {
  assert.equal(toLastCompleteWord('result = comp'), 'result = ');
  assert.equal(toLastCompleteWord('f(a, b)'), 'f(a, b)');
  assert.equal(toLastCompleteWord('naïve_wört'), '');
  assert.equal(toLastCompleteWord('x1 '), 'x1 ');
});

test('LineEndMatcher: the first line break, or the first after text', () => {
  const first = new LineEndMatcher('first');
  assert.deepEqual(first.push('abc'), { emit: 'abc', stopped: false });
  assert.deepEqual(first.push('d\r\nef'), { emit: 'd', stopped: true });
  assert.deepEqual(new LineEndMatcher('first').push('\nx'), { emit: '', stopped: true });
  const after = new LineEndMatcher('afterText');
  assert.deepEqual(after.push('\n\n'), { emit: '\n\n', stopped: false });
  assert.deepEqual(after.push('    return 1\n    x'), { emit: '    return 1', stopped: true });
});

// The decode loop itself (src/inference/generator.ts) on a scripted model: the real tokenizer of the embedded
// model, a model whose logits pick the next token of a script.
const TOKENIZER = TextTokenizer.fromFile(path.resolve(__dirname, '../../models/bloom-tiny/tokenizer.json'));

/** `clock`/`stepMs`: each model run advances the test's clock by stepMs(tokens run, run number). */
function scriptedModel(prompt: string, answer: string, clock?: { t: number }, stepMs: (tokens: number, run: number) => number = () => 0) {
  const promptIds = TOKENIZER.encode(prompt);
  const script = TOKENIZER.encode(prompt + answer).slice(promptIds.length);
  assert.deepEqual(TOKENIZER.encode(prompt + answer).slice(0, promptIds.length), promptIds, 'the answer does not change how the prompt tokenizes');
  const vocab = 8192;
  const runs: number[][] = [];
  /** Per drafted run: how many of its drafts the script agreed with. */
  const drafts: number[] = [];
  let seq: number[] = [];
  const model = {
    manifest: { prefix_length: 0, eos_token_id: 2, bos_token_id: 1, vocab_size: vocab },
    prefix: emptyKv(1, 'float32'),
    async forward(ids: readonly number[], past: KvCache): Promise<{ logits: Float32Array; next: number; kv: KvCache }> {
      runs.push([...ids]);
      if (clock) clock.t += stepMs(ids.length, runs.length - 1);
      seq = [...seq.slice(0, past.length), ...ids];
      const logits = new Float32Array(vocab);
      const next = script[seq.length - promptIds.length] ?? 2;
      logits[next] = 1;
      return { logits, next, kv: { ...past, length: past.length + ids.length } };
    },
    /** A greedy step: the graph's argmax only. */
    async forwardGreedy(ids: readonly number[], past: KvCache): Promise<{ next: number; kv: KvCache }> {
      const { next, kv } = await model.forward(ids, past);
      return { next, kv };
    },
    /** A greedy step with drafts: the script's token after each position. */
    async forwardDrafted(ids: readonly number[], past: KvCache): Promise<{ nexts: number[]; kv: KvCache }> {
      const { kv } = await model.forward(ids, past);
      const nexts = ids.map((_, i) => script[past.length + i + 1 - promptIds.length] ?? 2);
      let agreed = 0;
      while (agreed < ids.length - 1 && ids[agreed + 1] === nexts[agreed]) agreed++;
      drafts.push(agreed);
      return { nexts, kv };
    },
  };
  return { model: model as unknown as DecoderModel, runs, promptIds, script, drafts };
}

test('decode loop: a prefill-only request keeps the logits, so the generation for that prompt runs no prompt token', async () => {
  const prompt = 'def add(a, b):\n';
  const { model, runs, promptIds } = scriptedModel(prompt, '    return a + b\n');
  const loop = new DecodeLoop(model, TOKENIZER);
  const hooks = { aborted: () => false };
  const pre = await loop.generate(prompt, { maxTokens: 0 }, hooks);
  assert.equal(pre.timings.generatedTokens, 0);
  assert.deepEqual(runs, [promptIds]);
  const out = await loop.generate(prompt, { maxTokens: 32, stopAtNewline: 'first' }, hooks);
  assert.equal(out.text, '    return a + b');
  assert.equal(out.finishReason, 'stop');
  assert.equal(out.timings.reusedTokens, promptIds.length, 'the whole prompt came from the cache');
  // every run after the prefill starts with the next generated token (drafted tokens after it): no prompt token again
  let at = 0;
  for (const r of runs.slice(1)) {
    at = out.tokens.indexOf(r[0]!, at);
    assert.ok(at >= 0, `run [${r}] starts with a generated token, in order`);
    at++;
  }
  // the token holding the line break is never run: the next request reuses everything up to it
  assert.ok(runs.slice(1).every(r => r[0] !== out.tokens.at(-1)));
});

test('decode loop: greedy decoding drafts from the text and keeps the drafts the model agrees with, fewer runs for the same text', async () => {
  // the answer repeats a line of the prompt: the lookup drafts it, the model agrees
  const prompt = 'total = price * count + shipping_cost(order)\nsubtotal = ';
  const answer = 'price * count + shipping_cost(order)\n';
  const { model, runs, promptIds } = scriptedModel(prompt, answer);
  const out = await new DecodeLoop(model, TOKENIZER).generate(prompt, { maxTokens: 32, stopAtNewline: 'first' }, { aborted: () => false });
  assert.equal(out.text, answer.trimEnd(), 'the same text as one token a run');
  const decodeRuns = runs.length - 1;
  assert.ok(decodeRuns < out.tokens.length - 1, `${decodeRuns} runs for ${out.tokens.length} tokens`);
  assert.ok(runs.slice(1).some(r => r.length === 1 + DRAFT_TOKENS), 'full drafts were run');
  assert.deepEqual(runs[0], promptIds);
  // draft: false, one token a run (what benchmarks compare with other engines): the same text
  runs.length = 0;
  const single = await new DecodeLoop(model, TOKENIZER).generate(prompt, { maxTokens: 32, stopAtNewline: 'first', draft: false }, { aborted: () => false });
  assert.equal(single.text, out.text);
  assert.ok(runs.slice(1).every(r => r.length === 1) && runs.length - 1 === single.tokens.length - 1);
  await assert.rejects(new DecodeLoop(model, TOKENIZER).generate(prompt, { maxTokens: 4, draft: 'no' as unknown as boolean }, { aborted: () => false }), /draft/);
  // a partial draft: the model takes the drafts up to the first it disagrees with
  const partial = scriptedModel(prompt, 'price * count + tax(order)\n');
  const part = await new DecodeLoop(partial.model, TOKENIZER).generate(prompt, { maxTokens: 32, stopAtNewline: 'first' }, { aborted: () => false });
  assert.equal(part.text, 'price * count + tax(order)');
});

test('decode loop: drafts the model keeps refusing cost a few runs, then only an occasional probe', async () => {
  // the text repeats "1 2" followed by a new token each time: every lookup drafts what followed "1 2" last time, wrongly
  const answer = Array.from({ length: 120 }, (_, i) => [101, 102, 200 + i]).flat();
  const sizes: number[] = [];
  const model = {
    manifest: { prefix_length: 0, eos_token_id: 2, bos_token_id: 1, vocab_size: 8192 },
    prefix: emptyKv(1, 'float32'),
    async forward(ids: readonly number[], past: KvCache) {
      return { logits: new Float32Array(8192), next: answer[past.length + ids.length]!, kv: { ...past, length: past.length + ids.length } };
    },
    async forwardGreedy(ids: readonly number[], past: KvCache) {
      sizes.push(ids.length);
      return { next: answer[past.length + ids.length]!, kv: { ...past, length: past.length + ids.length } };
    },
    async forwardDrafted(ids: readonly number[], past: KvCache) {
      sizes.push(ids.length);
      return { nexts: ids.map((_, i) => answer[past.length + i + 1]!), kv: { ...past, length: past.length + ids.length } };
    },
  } as unknown as DecoderModel;
  const tokenizer = { encode: () => [answer[0]!], decode: (ids: number[]) => ids.map(i => `<${i}>`).join('') } as unknown as typeof TOKENIZER;
  const loop = new DecodeLoop(model, tokenizer);
  const out = await loop.generate('x', { maxTokens: 300, ignoreEos: true }, { aborted: () => false });
  assert.deepEqual(out.tokens, answer.slice(1, 301), 'the model\'s tokens');
  const drafted = sizes.filter(n => n > 1).length;
  // ~100 chances to draft: a handful of misses bring the average under the bar, then one probe in 16 chances
  assert.ok(drafted >= 3 && drafted <= 15, `${drafted} drafted runs`);
});

test('decode loop: the line-end stop keeps leading line breaks with afterText; bad values are refused', async () => {
  const prompt = 'def f():';
  const { model } = scriptedModel(prompt, '\n    pass\nx = 1\n');
  const loop = new DecodeLoop(model, TOKENIZER);
  const out = await loop.generate(prompt, { maxTokens: 32, stopAtNewline: 'afterText' }, { aborted: () => false });
  assert.equal(out.text, '\n    pass');
  await assert.rejects(loop.generate(prompt, { maxTokens: 4, stopAtNewline: 'nope' as 'first' }, { aborted: () => false }), /stopAtNewline/);
});

test('decode loop: no step starts unless its predicted end (p90 of the measured steps) plus the hand-off is within the deadline', async () => {
  const prompt = 'x =';
  const clock = { t: 0 };
  // a prefill of 100 ms, then one-token steps of 30 ms with one of 50 in every seven
  const { model, runs } = scriptedModel(prompt, ' print(a) + total_value + other_value', clock, (n, run) => (n > 1 ? 100 : run % 7 === 3 ? 50 : 30));
  const loop = new DecodeLoop(model, TOKENIZER, { now: () => clock.t });
  const hooks = { aborted: () => false };
  // warm up the step times: 20 steps, no deadline
  await loop.generate(prompt, { maxTokens: 21, ignoreEos: true }, hooks);
  assert.equal(loop.steps.predict(), 50, 'p90 of 20 steps with three of 50 ms (the median would be 30)');

  clock.t = 10_000;
  const deadline = { at: 10_000 + 300, handoffMs: 8, lateUntil: 10_000 + 450 };
  const before = runs.length;
  const out = await loop.generate(prompt, { maxTokens: 48, deadline }, hooks);
  assert.equal(out.finishReason, 'deadline');
  // after the 100 ms prefill, steps start while now + 50 + 8 <= 300 ms
  const stepsRun = runs.length - before - 1;
  assert.equal(out.timings.endedAt, clock.t);
  assert.ok(clock.t - 10_000 + 8 <= 300, `the text is ready in time: ${clock.t - 10_000} ms + 8 ms hand-off`);
  assert.ok(clock.t - 10_000 + 50 + 8 > 300, 'and no further step fits the plan');
  assert.equal(out.tokens.length, stepsRun + 1, 'the last token came from the last step, no step run after it');
  assert.equal(out.text, ' print(a) + ');
});

test('decode loop: with nothing complete by the deadline it goes on to the first complete word (up to lateUntil); a token ending in punctuation ends it', async () => {
  const prompt = 'x =';
  const clock = { t: 0 };
  const { model, runs } = scriptedModel(prompt, ' print(a) + total_value', clock, n => (n > 1 ? 100 : 40));
  const loop = new DecodeLoop(model, TOKENIZER, { now: () => clock.t });
  const hooks = { aborted: () => false };
  // the deadline has passed when the prompt is in: " print" may go on, "(" completes it, and no step follows
  const late = await loop.generate(prompt, { maxTokens: 48, deadline: { at: 50, handoffMs: 5, lateUntil: 500 } }, hooks);
  assert.equal(late.finishReason, 'deadline');
  assert.equal(late.text, ' print(');
  assert.equal(runs.length, 1 + 2, 'the prefill, then the steps that gave "(" and ... no more: "(" was complete');

  // no step may end past lateUntil either: the text as it stands (" print" after one more 40 ms step, not "(")
  loop.resetCache();
  clock.t = 0;
  const cut = await loop.generate(prompt, { maxTokens: 48, deadline: { at: 50, handoffMs: 5, lateUntil: 150 } }, hooks);
  assert.equal(cut.text, ' print');
  assert.equal(cut.finishReason, 'deadline');

  // the embedded-model case: steps far inside the budget, the line ends first
  loop.resetCache();
  clock.t = 0;
  const { model: fast } = scriptedModel(prompt, ' print(a)\nnext', clock, () => 1);
  const quick = await new DecodeLoop(fast, TOKENIZER, { now: () => clock.t }).generate(prompt, { maxTokens: 48, stopAtNewline: 'first', deadline: { at: 300, handoffMs: 5, lateUntil: 450 } }, hooks);
  assert.equal(quick.finishReason, 'stop');
  assert.equal(quick.text, ' print(a)');

  await assert.rejects(loop.generate(prompt, { maxTokens: 4, deadline: { at: 10, handoffMs: 5, lateUntil: 5 } }, hooks), /deadline/);
});

test('StepTimes: the 90th percentile of recent one-token steps; a prefill bounds it until one is timed', () => {
  const s = new StepTimes(10);
  assert.equal(s.predict(), 0);
  s.record(12, 140);
  assert.equal(s.predict(), 140, 'a prefill as the only evidence');
  for (const ms of [30, 31, 29, 30, 32, 30, 45, 30, 31, 30]) s.record(1, ms);
  assert.equal(s.predict(), 32);
  for (let i = 0; i < 10; i++) s.record(1, 60); // the machine got busy: only the recent steps count
  assert.equal(s.predict(), 60);
  assert.equal(stepFits({ at: 300, handoffMs: 5, lateUntil: 450 }, 200, 60, 'a + b'), true);
  assert.equal(stepFits({ at: 300, handoffMs: 5, lateUntil: 450 }, 240, 60, 'a + b'), false);
  assert.equal(stepFits({ at: 300, handoffMs: 5, lateUntil: 450 }, 240, 60, ' value'), true, 'no complete word yet');
  assert.equal(stepFits({ at: 300, handoffMs: 5, lateUntil: 450 }, 400, 60, ' value'), false, 'but not past lateUntil');
});
