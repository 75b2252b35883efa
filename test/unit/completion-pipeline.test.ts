// The pipeline end to end with a scripted generator standing in for the ONNX engine (the engine itself is tested
// with real exports in completion-engine.test.ts): debounce, cancellation, cache, early stop, errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CompletionPipeline } from '../../src/completion/pipeline';
import { DEFAULT_SETTINGS, type AdapterInfo, type CompletionSettings, type GenerateOptions, type GenerateResult, type Generator } from '../../src/completion/types';

/** Streams `reply(prompt)` token by token (one char per `msPerToken`), honouring the abort signal like the engine. */
class ScriptedGenerator implements Generator {
  calls: Array<{ prompt: string; opts: GenerateOptions }> = [];
  /** Prefill-only requests (maxTokens 0), sent while the debounce waits. */
  prefills: Array<{ prompt: string; opts: GenerateOptions }> = [];
  tokensStreamed = 0;
  constructor(private readonly reply: (prompt: string) => string, private readonly msPerToken = 1, private readonly failWith?: Error) {}
  async generate(prompt: string, opts: GenerateOptions): Promise<GenerateResult> {
    if (opts.maxTokens === 0) {
      this.prefills.push({ prompt, opts });
      return { text: '', finishReason: 'length' };
    }
    this.calls.push({ prompt, opts });
    if (this.failWith) throw this.failWith;
    const chunks = this.reply(prompt).match(/.{1,3}/gs) ?? [];
    let text = '';
    for (const c of chunks.slice(0, opts.maxTokens)) {
      await new Promise(r => setTimeout(r, this.msPerToken));
      if (opts.signal?.aborted) return { text, finishReason: 'aborted' };
      text += c;
      this.tokensStreamed++;
      opts.onToken?.(c);
    }
    return { text, finishReason: 'eos' };
  }
}

/** An engine the test steps by hand: each call waits for `release(text)` or its abort signal. */
class GatedGenerator implements Generator {
  calls: Array<{ prompt: string; opts: GenerateOptions; release: (text: string) => void }> = [];
  private readonly waiting: Array<() => void> = [];
  /** Resolves once `n` calls have reached the engine. */
  called(n: number): Promise<void> {
    if (this.calls.length >= n) return Promise.resolve();
    return new Promise(r => this.waiting.push(() => { if (this.calls.length >= n) r(); }));
  }
  constructor(private readonly honourAbort = true) {}
  generate(prompt: string, opts: GenerateOptions): Promise<GenerateResult> {
    if (opts.maxTokens === 0) return Promise.resolve({ text: '', finishReason: 'length' });
    return new Promise(resolve => {
      const release = (text: string): void => resolve({ text, finishReason: 'eos' });
      this.calls.push({ prompt, opts, release });
      if (this.honourAbort) opts.signal?.addEventListener('abort', () => resolve({ text: '', finishReason: 'aborted' }), { once: true });
      for (const w of this.waiting.splice(0)) w();
    });
  }
}

const adapter: AdapterInfo = { key: 'run-1', template: { prompt: 'Human: {instruction}\n{input}', response_prefix: '\n\nAssistant: ' }, instructionTuned: false };
// No latency budget here: these tests step the engine by the event loop, not by a clock (the budget's own tests
// drive a clock by hand).
const settings = (over: Partial<CompletionSettings> = {}): CompletionSettings => ({ ...DEFAULT_SETTINGS, debounceMs: 30, latencyBudgetMs: 0, ...over });
const request = (prefix: string, suffix = '') => ({ uri: 'file:///t.py', languageId: 'python', prefix, suffix });

function pipelineWith(gen: Generator, s: CompletionSettings = settings(), a: AdapterInfo = adapter, onError?: (e: unknown) => void) {
  return new CompletionPipeline({ getGenerator: () => ({ generator: gen, adapter: a }), settings: () => s, onError });
}

test('a burst of 20 keystrokes causes one generation, for the last one', async () => {
  const gen = new ScriptedGenerator(() => 'len(items)\n');
  const p = pipelineWith(gen);
  const doc = 'count = ';
  const typed = 'total_of_everything_';
  const results: Array<Promise<unknown>> = [];
  // VS Code cancels the previous request's token on every keystroke; here every request keeps its own signal
  // alive, so the debounce alone must make the earlier 19 give up. The keystrokes arrive in one turn of the event
  // loop, before any debounce timer can fire, however loaded the machine is.
  for (let i = 0; i < 20; i++) results.push(p.complete(request(doc + typed.slice(0, i + 1))));
  const out = await Promise.all(results);
  assert.equal(gen.calls.length, 1);
  assert.equal(gen.calls[0]!.prompt, doc + typed);
  // every keystroke sent its prefill at once; each newer one aborted the one before
  assert.equal(gen.prefills.length, 20);
  assert.equal(gen.prefills.filter(c => c.opts.signal!.aborted).length, 19);
  assert.equal(gen.prefills[19]!.prompt, doc + typed);
  assert.equal(out.filter(Boolean).length, 1);
  assert.deepEqual((out[19] as { insertText: string }).insertText, 'len(items)');
  assert.equal(p.stats.generations, 1);
});

test('cancellation during generation discards the result; the engine is asked to stop', async () => {
  const ctl = new AbortController();
  // the request is cancelled right after the engine streams its second chunk
  const gen = new ScriptedGenerator(() => 'a_long_completion_that_takes_a_while()');
  const streamed: string[] = [];
  const p = pipelineWith({
    generate: (prompt, opts) => gen.generate(prompt, { ...opts, onToken: t => { opts.onToken?.(t); streamed.push(t); if (streamed.length === 2) ctl.abort(); } }),
  }, settings({ debounceMs: 0, mode: 'multiLine' }));
  assert.equal(await p.complete(request('x = '), ctl.signal), undefined);
  assert.equal(p.stats.lastSkip, 'aborted');
  assert.ok(gen.calls[0]!.opts.signal!.aborted, 'the engine saw the abort');
  assert.equal(gen.tokensStreamed, 2, 'the engine stopped at the next chunk');
  assert.equal(p.cache.size, 0, 'a partial generation is not cached');
});

test('cancellation during the debounce means no generation at all', async () => {
  const gen = new ScriptedGenerator(() => 'foo');
  const p = pipelineWith(gen, settings({ debounceMs: 60_000 })); // a debounce no test run outlasts
  const ctl = new AbortController();
  const pending = p.complete(request('x = '), ctl.signal);
  ctl.abort();
  assert.equal(await pending, undefined);
  assert.equal(p.stats.lastSkip, 'aborted');
  assert.equal(gen.calls.length, 0);
});

test('a result that arrives after cancellation is not shown (an engine that ignores the signal)', async () => {
  const stubborn = new GatedGenerator(false);
  const p = pipelineWith(stubborn, settings({ debounceMs: 0 }));
  const ctl = new AbortController();
  const pending = p.complete(request('x = '), ctl.signal);
  await stubborn.called(1);
  ctl.abort(); // cancelled while the engine works...
  stubborn.calls[0]!.release('value'); // ...which then finishes anyway
  assert.equal(await pending, undefined);
  assert.equal(p.stats.lastSkip, 'aborted');
  // ...but the finished text is kept for the next identical request.
  const again = await p.complete(request('x = '));
  assert.equal(again?.insertText, 'value');
  assert.equal(again?.cached, true);
  assert.equal(stubborn.calls.length, 1);
});

test('a newer generation aborts the one in flight', async () => {
  const gen = new GatedGenerator();
  const p = pipelineWith(gen, settings({ debounceMs: 0 }));
  const first = p.complete(request('x = a'));
  await gen.called(1);
  const second = p.complete(request('x = b'));
  await gen.called(2);
  assert.ok(gen.calls[0]!.opts.signal!.aborted, 'the first generation was told to stop');
  assert.equal(await first, undefined);
  gen.calls[1]!.release('second()');
  assert.equal((await second)?.insertText, 'second()');
});

test('typing the characters of a shown suggestion keeps it, without generating', async () => {
  const gen = new ScriptedGenerator(() => 'compute(a, b)');
  const p = pipelineWith(gen, settings({ debounceMs: 0 }));
  const shown = await p.complete(request('result = '));
  assert.equal(shown?.insertText, 'compute(a, b)');
  let prefix = 'result = ';
  for (const ch of 'compute(a') {
    prefix += ch;
    const c = await p.complete(request(prefix));
    assert.equal(c?.cached, true);
    assert.equal(prefix + c!.insertText, 'result = compute(a, b)');
  }
  assert.equal(gen.calls.length, 1);
  assert.equal(p.stats.cacheHits, 9);
  // A different character: a new generation.
  await p.complete(request('result = computx'));
  assert.equal(gen.calls.length, 2);
});

test('streaming stops as soon as the line is complete (single-line)', async () => {
  const gen = new ScriptedGenerator(() => 'print(x)\nprint(y)\nprint(z)\n' + 'filler '.repeat(30));
  const p = pipelineWith(gen, settings({ debounceMs: 0, maxTokens: 200 }));
  const c = await p.complete(request('if x:\n    '));
  assert.equal(c?.insertText, 'print(x)');
  assert.ok(gen.tokensStreamed <= 4, `${gen.tokensStreamed} chunks streamed`);
  assert.ok(gen.calls[0]!.opts.signal!.aborted, 'the engine was told to stop');
});

test('settings flow to the engine; prefilter and blank results show nothing', async () => {
  const gen = new ScriptedGenerator(() => '   ');
  const p = pipelineWith(gen, settings({ debounceMs: 0, maxTokens: 7, temperature: 0.5 }));
  assert.equal(await p.complete(request('x = ')), undefined);
  assert.equal(p.stats.lastSkip, 'blank');
  assert.equal(gen.calls[0]!.opts.maxTokens, 7);
  assert.equal(gen.calls[0]!.opts.temperature, 0.5);
  assert.equal(await p.complete(request('fo', 'o = 1')), undefined);
  assert.equal(p.stats.lastSkip, 'mid-word');
  assert.equal(gen.calls.length, 1);
});

test('a duplicate of the following text is dropped', async () => {
  const gen = new ScriptedGenerator(() => 'return x');
  const p = pipelineWith(gen, settings({ debounceMs: 0 }));
  assert.equal(await p.complete(request('def f(x):\n    ', '\n    return x\n')), undefined);
  assert.equal(p.stats.lastSkip, 'duplicate');
});

test('instruction-tuned adapter: the template prompt goes to the engine, the answer lands on the next line', async () => {
  const gen = new ScriptedGenerator(() => 'reset_user');
  const p = pipelineWith(gen, settings({ debounceMs: 0 }), { ...adapter, instructionTuned: true });
  const c = await p.complete(request('Convert to snake_case\nReset User'));
  assert.equal(gen.calls[0]!.prompt, 'Human: Convert to snake_case\nReset User\n\nAssistant: ');
  assert.deepEqual(gen.calls[0]!.opts.stop, ['\nHuman:']);
  assert.equal(c?.insertText, '\nreset_user');
  const d = await p.complete(request('Human: Convert to snake_case\nReset User\n\nAssistant: '));
  assert.equal(d?.insertText, 'reset_user');
});

test('engine errors are reported once per failing request and show nothing', async () => {
  const errors: unknown[] = [];
  const gen = new ScriptedGenerator(() => '', 1, Object.assign(new Error('engine crashed'), { code: 'ENGINE_CRASHED' }));
  const p = pipelineWith(gen, settings({ debounceMs: 0 }), adapter, e => errors.push(e));
  assert.equal(await p.complete(request('x = ')), undefined);
  assert.equal(p.stats.lastSkip, 'error');
  assert.equal(errors.length, 1);
  assert.match(String(errors[0]), /engine crashed/);
});

test('no adapter: nothing, quietly', async () => {
  const p = new CompletionPipeline({ getGenerator: () => undefined, settings: () => settings() });
  assert.equal(await p.complete(request('x = ')), undefined);
  assert.equal(p.stats.lastSkip, 'no-adapter');
});
