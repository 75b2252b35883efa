// Keystroke → ghost text latency: the prefill sent during the debounce, the stop at the line's end and the latency
// budget. The engine is stepped by hand and the clock is the test's own, so nothing here races a timer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Debouncer } from '../../src/completion/debounce';
import { CompletionPipeline, toLastCompleteWord } from '../../src/completion/pipeline';
import { DEFAULT_SETTINGS, type AdapterInfo, type CompletionRequest, type CompletionSettings, type GenerateOptions, type GenerateResult, type Generator } from '../../src/completion/types';
import type { DecoderModel } from '../../src/inference/decoder';
import { Generator as DecodeLoop } from '../../src/inference/generator';
import { emptyKv, type KvCache } from '../../src/inference/kv';
import { LineEndMatcher } from '../../src/inference/stop';
import { TextTokenizer } from '../../src/inference/tokenizer';

interface EngineCall {
  prompt: string;
  opts: GenerateOptions;
  /** Streams one token, as the worker's 'token' message would. */
  emit(text: string): void;
  /** Ends the request (the worker's 'result'). */
  finish(reason?: GenerateResult['finishReason']): void;
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
        finish: (reason = 'eos') => resolve({ text, finishReason: reason }),
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
  override wait(_ms: number, signal?: AbortSignal): Promise<boolean> {
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

test('latency budget: decoding stops before the next token would be late, at the last complete word', async () => {
  const { engine, debouncer, clock, pipeline } = setup({ latencyBudgetMs: 300 });
  const pending = pipeline.complete(request('def f(a, b):\n    '));
  await engine.called(1);
  clock.t = 150;
  debouncer.fire();
  await engine.called(2);
  const gen = engine.generations[0]!;
  clock.t = 190;
  gen.emit('result'); // 190 + (no gap known yet) < 300
  clock.t = 230;
  gen.emit(' ='); // 230 + 40 < 300
  clock.t = 265;
  gen.emit(' comp'); // 265 + 35 >= 300: the next token would come after the budget; "comp" may go on
  const c = await pending;
  assert.equal(c?.insertText, 'result =');
  assert.equal(gen.opts.signal!.aborted, true);
  assert.equal(pipeline.stats.lastEnd, 'budget');
  // the cut text is a true beginning of the greedy answer: typing through it is answered from the cache
  const typed = await pipeline.complete(request('def f(a, b):\n    res'));
  assert.equal(typed?.cached, true);
  assert.equal(typed?.insertText, 'ult =');
});

test('latency budget: once spent, the first complete word is still shown (never nothing for being slow)', async () => {
  const { engine, debouncer, clock, pipeline } = setup({ latencyBudgetMs: 300 });
  const pending = pipeline.complete(request('value = '));
  await engine.called(1);
  clock.t = 400; // a slow debounce and prefill: the budget is gone before the first token
  debouncer.fire();
  await engine.called(2);
  const gen = engine.generations[0]!;
  gen.emit('compute'); // may go on: nothing to show yet
  clock.t = 410;
  gen.emit('_total');
  assert.equal(gen.opts.signal!.aborted, false, 'no complete word yet');
  clock.t = 420;
  gen.emit('(a');
  assert.equal((await pending)?.insertText, 'compute_total(');
});

test('latency budget: one word that goes on and on is cut at its last token half the budget later', async () => {
  const { engine, debouncer, clock, pipeline } = setup({ latencyBudgetMs: 300 });
  const pending = pipeline.complete(request('value = '));
  await engine.called(1);
  clock.t = 150;
  debouncer.fire();
  await engine.called(2);
  const gen = engine.generations[0]!;
  for (const [t, piece] of [[200, 'very'], [260, 'Long'], [320, 'Identifier']] as const) {
    clock.t = t;
    gen.emit(piece);
  }
  assert.equal(gen.opts.signal!.aborted, false, 'up to 1.5x the budget it waits for a complete word');
  clock.t = 400; // 400 + 80 >= 450: the next token would come after the last moment
  gen.emit('Name');
  assert.equal((await pending)?.insertText, 'veryLongIdentifierName');
  assert.equal(pipeline.stats.lastEnd, 'budget');
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
  debouncer.fire();
  await engine.called(2);
  clock.t += 200;
  engine.calls[1]!.emit('alpha');
  clock.t += 20;
  engine.calls[1]!.emit(' + beta');
  engine.calls[1]!.finish();
  assert.equal((await first)?.insertText, 'alpha + beta', 'within 300 ms of the keystroke, the load aside');

  budget = 0;
  const second = pipeline.complete(request('y = '));
  await engine.called(3);
  debouncer.fire();
  await engine.called(4);
  clock.t += 60_000;
  engine.calls[3]!.emit('gamma');
  clock.t += 60_000;
  engine.calls[3]!.emit(' * delta');
  engine.calls[3]!.finish();
  assert.equal((await second)?.insertText, 'gamma * delta');
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

function scriptedModel(prompt: string, answer: string) {
  const promptIds = TOKENIZER.encode(prompt);
  const script = TOKENIZER.encode(prompt + answer).slice(promptIds.length);
  assert.deepEqual(TOKENIZER.encode(prompt + answer).slice(0, promptIds.length), promptIds, 'the answer does not change how the prompt tokenizes');
  const vocab = 8192;
  const runs: number[][] = [];
  let seq: number[] = [];
  const model = {
    manifest: { prefix_length: 0, eos_token_id: 2, bos_token_id: 1, vocab_size: vocab },
    prefix: emptyKv(1, 'float32'),
    async forward(ids: readonly number[], past: KvCache): Promise<{ logits: Float32Array; kv: KvCache }> {
      runs.push([...ids]);
      seq = [...seq.slice(0, past.length), ...ids];
      const logits = new Float32Array(vocab);
      logits[script[seq.length - promptIds.length] ?? 2] = 1;
      return { logits, kv: { ...past, length: past.length + ids.length } };
    },
  };
  return { model: model as unknown as DecoderModel, runs, promptIds, script };
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
  assert.ok(runs.slice(1).every(r => r.length === 1), 'only generated tokens were run after the prefill');
  // the token holding the line break is never run: the next request reuses everything up to it
  assert.equal(runs.length - 1, out.tokens.length - 1);
});

test('decode loop: the line-end stop keeps leading line breaks with afterText; bad values are refused', async () => {
  const prompt = 'def f():';
  const { model } = scriptedModel(prompt, '\n    pass\nx = 1\n');
  const loop = new DecodeLoop(model, TOKENIZER);
  const out = await loop.generate(prompt, { maxTokens: 32, stopAtNewline: 'afterText' }, { aborted: () => false });
  assert.equal(out.text, '\n    pass');
  await assert.rejects(loop.generate(prompt, { maxTokens: 4, stopAtNewline: 'nope' as 'first' }, { aborted: () => false }), /stopAtNewline/);
});
