// The engine against PyTorch on exports of every method made by the project's exporter: logits and
// greedy tokens, tokenizer ids, KV reuse, streaming, stop sequences, and clear errors for bad exports.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { CompletionEngine, type EngineError } from '../../src/inference';
import { DecoderModel } from '../../src/inference/decoder';
import { Generator } from '../../src/inference/generator';
import { readManifest } from '../../src/inference/manifest';
import { TextTokenizer } from '../../src/inference/tokenizer';
import { copyExport, editManifest, parityExports, type ParityReference } from './inference-fixtures';

let exports: { variant: string; dir: string; ref: ParityReference }[];
let engine: CompletionEngine;
const opts = { threads: 1, optimization: 'extended' as const };

before(async () => {
  exports = parityExports();
  engine = await CompletionEngine.load(exports[0].dir, opts);
});
after(async () => {
  await engine?.dispose();
});

const byVariant = (v: string) => exports.find(e => e.variant === v)!;

test('fixtures cover all seven methods', () => {
  const methods = new Set(exports.map(e => e.ref.method));
  assert.deepEqual([...methods].sort(), ['bitfit', 'full', 'ia3', 'lora', 'p_tuning', 'prefix_tuning', 'prompt_tuning']);
});

test('parity with PyTorch: last-position logits within 1e-4 and greedy tokens equal, every method', async t => {
  for (const { variant, dir, ref } of exports) {
    await engine.reload(dir);
    assert.equal(engine.manifest.method, ref.method);
    const tol = ref.tolerance ?? 1e-4;
    let worst = 0;
    for (const [k, prompt] of ref.prompts.entries()) {
      const { logits, ids } = await engine.logits(prompt);
      assert.deepEqual(ids, ref.input_ids[k], `${variant}: token ids of ${JSON.stringify(prompt)}`);
      const head = ref.last_logits[k];
      for (let i = 0; i < head.length; i++) worst = Math.max(worst, Math.abs(logits[i] - head[i]));
      assert.ok(worst <= tol, `${variant}: max |logit diff| ${worst} for ${JSON.stringify(prompt)}`);
      let best = 0;
      for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
      assert.equal(best, ref.last_argmax[k], `${variant}: argmax of the last logits`);
      const r = await engine.generate(prompt, { maxTokens: ref.greedy_ids[k].length, ignoreEos: true, reuseCache: false });
      assert.deepEqual(r.tokens, ref.greedy_ids[k], `${variant}: greedy tokens for ${JSON.stringify(prompt)}`);
      assert.equal(r.finishReason, 'length');
    }
    t.diagnostic(`${variant}: max |logit diff| ${worst.toExponential(2)}, ${ref.prompts.length} prompts x ${ref.greedy_steps} greedy tokens equal`);
  }
});

test('the KV slots survive edits and growth: warm requests give the tokens of cold ones', async t => {
  for (const variant of ['lora', 'prefix_tuning']) {
    const { dir, ref } = byVariant(variant);
    await engine.reload(dir);
    // typing, deleting and typing again: each request reuses a truncated cache and writes over its free slots
    let text = ref.prompts[0];
    await engine.generate(text, { maxTokens: 8, ignoreEos: true });
    for (const edit of ['x', '<del>', '<del>', 'yz', '(']) {
      text = edit === '<del>' ? text.slice(0, -1) : text + edit;
      const warm = await engine.generate(text, { maxTokens: 8, ignoreEos: true });
      assert.ok(warm.timings.reusedTokens > 0, `${variant}: after ${edit} the cache was reused`);
      const cold = await engine.generate(text, { maxTokens: 8, ignoreEos: true, reuseCache: false });
      assert.deepEqual(warm.tokens, cold.tokens, `${variant}: after ${edit}`);
    }
    t.diagnostic(`${variant}: 5 edits agree warm and cold`);
  }
  // Without a reservation the slots grow step by step (64, 128, ...): every reallocation keeps the cache intact,
  // so the logits equal those of a cache reserved once for the whole sequence.
  const { manifest, files } = readManifest(byVariant('prefix_tuning').dir);
  const model = await DecoderModel.load(files, manifest, { threads: 1 });
  try {
    let a = await model.forward([5, 17, 42], model.prefix);
    let b = await model.forward([5, 17, 42], model.prefix, manifest.prefix_length + 160);
    // and greedy steps (the graph's next_tokens, no logits fetched) on a cache of their own
    let g = await model.forwardGreedy([5, 17, 42], model.prefix);
    const capacities = new Set<number>();
    for (let step = 0; step < 150; step++) {
      let worst = 0;
      for (let i = 0; i < a.logits.length; i++) worst = Math.max(worst, Math.abs(a.logits[i] - b.logits[i]));
      assert.ok(worst <= 1e-4, `step ${step}: max |logit diff| ${worst}`);
      capacities.add(a.kv.capacity);
      const next = a.logits.indexOf(Math.max(...a.logits));
      assert.equal(a.next, next, `step ${step}: next_tokens holds the first index of the largest logit`);
      assert.equal(g.next, next, `step ${step}: a greedy step's next_tokens`);
      a = await model.forward([next], a.kv);
      b = await model.forward([next], b.kv);
      g = await model.forwardGreedy([next], g.kv);
    }
    assert.equal(g.kv.length, a.kv.length);
    assert.equal(a.kv.length, manifest.prefix_length + 153);
    assert.equal(b.kv.capacity, Math.ceil((manifest.prefix_length + 160) / 64) * 64, 'the reserved cache never grew');
    assert.ok(capacities.size >= 3, `capacities seen: ${[...capacities]}`);
  } finally {
    await model.release();
  }
});

test('greedy decode steps fetch only next_tokens; the prompt keeps its logits, so a cached prompt can be sampled too', async () => {
  const { dir, ref } = byVariant('lora');
  const { manifest, files } = readManifest(dir);
  const model = await DecoderModel.load(files, manifest, { threads: 1 });
  try {
    // which outputs each model run fetched: 'logits' (logits + next_tokens) or 'next' (next_tokens alone; with
    // drafted tokens: 'drafted')
    const runs: string[] = [];
    const forward = model.forward.bind(model);
    const forwardGreedy = model.forwardGreedy.bind(model);
    const forwardDrafted = model.forwardDrafted.bind(model);
    model.forwardDrafted = (...a) => {
      runs.push('drafted');
      return forwardDrafted(...a);
    };
    model.forward = (...a) => {
      runs.push('logits');
      return forward(...a);
    };
    model.forwardGreedy = (...a) => {
      runs.push('next');
      return forwardGreedy(...a);
    };
    const gen = new Generator(model, TextTokenizer.fromFile(files.tokenizer, { vocabSize: manifest.vocab_size, manifest: files.manifest }));
    const none = { aborted: () => false };
    const take = () => runs.splice(0);
    const [p0, p1] = ref.prompts;

    const r = await gen.generate(p0, { maxTokens: 6, ignoreEos: true, reuseCache: false }, none);
    assert.deepEqual(r.tokens, ref.greedy_ids[0].slice(0, 6));
    const decoded = take();
    assert.equal(decoded[0], 'logits');
    assert.ok(decoded.length <= 6 && decoded.slice(1).every(k => k === 'next' || k === 'drafted'), `${decoded}`);

    // a prefill-only request, then greedy decoding of that prompt from the kept token: no prompt token runs again
    await gen.generate(p1, { maxTokens: 0 }, none);
    assert.deepEqual(take(), ['logits']);
    const warm = await gen.generate(p1, { maxTokens: 3, ignoreEos: true }, none);
    assert.equal(warm.timings.reusedTokens, warm.timings.promptTokens);
    assert.deepEqual(warm.tokens, ref.greedy_ids[1].slice(0, 3));
    assert.ok(take().every(k => k === 'next' || k === 'drafted'));

    // sampling after greedy steps: their logits were never fetched, so the prompt's last token runs again for them
    const sampled = await gen.generate(p1, { maxTokens: 3, ignoreEos: true, temperature: 0.8, seed: 7 }, none);
    assert.equal(sampled.timings.reusedTokens, sampled.timings.promptTokens - 1);
    assert.deepEqual(take(), ['logits', 'logits', 'logits']);
    // a prefill-only request, then sampling from the kept logits: the same tokens as from a cold start
    await gen.generate(p0, { maxTokens: 0 }, none);
    const kept = await gen.generate(p0, { maxTokens: 3, ignoreEos: true, temperature: 0.8, seed: 7 }, none);
    assert.equal(kept.timings.reusedTokens, kept.timings.promptTokens);
    assert.deepEqual(take(), ['logits', 'logits', 'logits']);
    const cold = await gen.generate(p0, { maxTokens: 3, ignoreEos: true, temperature: 0.8, seed: 7, reuseCache: false }, none);
    assert.deepEqual(kept.tokens, cold.tokens);
  } finally {
    await model.release();
  }
});

test('drafted tokens: greedy decoding gives the tokens of one-token steps in fewer model runs, every method', async t => {
  // a prompt that repeats itself, so the lookup drafts and the model (pretrained on copy drills) takes drafts
  const line = 'Human: copy the words: red apple, green pear, blue plum\n\nAssistant: red apple, green pear, blue plum\n';
  const prompt = `${line}${line}Human: copy the words: red apple, green pear, blue plum\n\nAssistant:`;
  for (const { variant, dir } of exports) {
    const { manifest, files } = readManifest(dir);
    const model = await DecoderModel.load(files, manifest, { threads: 1, optimization: 'extended' });
    try {
      const tokenizer = TextTokenizer.fromFile(files.tokenizer, { vocabSize: manifest.vocab_size, manifest: files.manifest });
      // one token a run, as decoding did before drafts
      let g = await model.forwardGreedy(tokenizer.encode(prompt), model.prefix);
      const oneByOne: number[] = [];
      for (let i = 0; i < 24; i++) {
        oneByOne.push(g.next);
        g = await model.forwardGreedy([g.next], g.kv);
      }
      let runs = 0;
      const forwardDrafted = model.forwardDrafted.bind(model);
      const forwardGreedy = model.forwardGreedy.bind(model);
      model.forwardDrafted = (...a) => (runs++, forwardDrafted(...a));
      model.forwardGreedy = (...a) => (runs++, forwardGreedy(...a));
      const gen = new Generator(model, tokenizer);
      const r = await gen.generate(prompt, { maxTokens: 24, ignoreEos: true }, { aborted: () => false });
      const decodeRuns = runs;
      assert.deepEqual(r.tokens, oneByOne, `${variant}: drafted decoding changed the greedy tokens`);
      // the cache holds the prompt and what was decoded (accepted drafts in, refused ones out): a request that
      // continues the text reuses it and gets the tokens of a cold start
      const again = await gen.generate(prompt + r.text, { maxTokens: 4, ignoreEos: true }, { aborted: () => false });
      assert.ok(again.timings.reusedTokens > 0);
      const cold = await new Generator(model, tokenizer).generate(prompt + r.text, { maxTokens: 4, ignoreEos: true, reuseCache: false }, { aborted: () => false });
      assert.deepEqual(again.tokens, cold.tokens, variant);
      t.diagnostic(`${variant}: ${r.tokens.length} tokens in ${decodeRuns} decode runs (${JSON.stringify(r.text.slice(0, 40))})`);
    } finally {
      await model.release();
    }
  }
});

test('float16 export (prefix tuning): same argmax as PyTorch, greedy tokens as onnxruntime in Python, KV reuse', async t => {
  const [{ dir, ref }] = parityExports('fp16');
  await engine.reload(dir);
  assert.equal(engine.manifest.dtype, 'float16');
  assert.ok(engine.manifest.prefix_length > 0);
  let worst = 0;
  for (const [k, prompt] of ref.prompts.entries()) {
    const { logits } = await engine.logits(prompt);
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    assert.equal(best, ref.last_argmax[k]);
    for (let i = 0; i < ref.last_logits[k].length; i++) worst = Math.max(worst, Math.abs(logits[i] - ref.last_logits[k][i]));
  }
  // float16 weights and KV: the same tokens as the Python reference decoder on the same export.
  const r = await engine.generate(ref.prompts[0], { maxTokens: ref.greedy_steps, ignoreEos: true, reuseCache: false });
  assert.deepEqual(r.tokens, ref.python_onnxruntime_greedy_ids);
  const cold = await engine.generate('def load_user(user_', { maxTokens: 6, ignoreEos: true, reuseCache: false });
  await engine.generate('def load_user(user', { maxTokens: 6, ignoreEos: true });
  const warm = await engine.generate('def load_user(user_', { maxTokens: 6, ignoreEos: true });
  assert.ok(warm.timings.reusedTokens > 0);
  assert.deepEqual(warm.tokens, cold.tokens);
  t.diagnostic(`float16: max |logit diff| vs PyTorch float32 ${worst.toExponential(2)}`);
});

test('KV reuse: one more character typed reuses the prompt KV and gives the cold output', async () => {
  for (const variant of ['lora', 'prefix_tuning']) {
    await engine.reload(byVariant(variant).dir);
    const prompt = 'def load_user(user_id):\n    return db.get(user';
    const typed = prompt + '_';
    const cold = await engine.generate(typed, { maxTokens: 6, ignoreEos: true, reuseCache: false });
    assert.equal(cold.timings.reusedTokens, 0);
    await engine.generate(prompt, { maxTokens: 6, ignoreEos: true });
    const warm = await engine.generate(typed, { maxTokens: 6, ignoreEos: true });
    assert.ok(warm.timings.reusedTokens > 0, `${variant}: reused ${warm.timings.reusedTokens}`);
    assert.ok(warm.timings.reusedTokens < warm.timings.promptTokens);
    assert.deepEqual(warm.tokens, cold.tokens, variant);
    assert.equal(warm.text, cold.text);
    // The same prompt again: everything but the last token comes from the cache.
    const again = await engine.generate(typed, { maxTokens: 6, ignoreEos: true });
    assert.equal(again.timings.reusedTokens, again.timings.promptTokens - 1);
    assert.deepEqual(again.tokens, cold.tokens);
    // Deleting characters (a shorter prompt) reuses the common part too.
    const shorter = await engine.generate(prompt.slice(0, -5), { maxTokens: 6, ignoreEos: true });
    const shorterCold = await engine.generate(prompt.slice(0, -5), { maxTokens: 6, ignoreEos: true, reuseCache: false });
    assert.ok(shorter.timings.reusedTokens > 0);
    assert.deepEqual(shorter.tokens, shorterCold.tokens);
  }
});

test('streaming, stop sequences, max tokens, seeded sampling', async () => {
  await engine.reload(byVariant('lora').dir);
  const prompt = 'Human: Convert to snake_case\nReset User\n\nAssistant: ';
  const full = await engine.generate(prompt, { maxTokens: 12, ignoreEos: true });
  assert.equal(full.finishReason, 'length');
  assert.equal(full.tokens.length, 12);
  let streamed = '';
  const s = await engine.generate(prompt, { maxTokens: 12, ignoreEos: true, onToken: t => (streamed += t) });
  assert.equal(streamed, s.text);
  assert.equal(s.text, full.text);
  // Stop at a piece of the greedy text: the result is the text before it, and the stream never shows it.
  const stop = full.text.slice(3, 5);
  assert.ok(stop.length === 2, `greedy text too short: ${JSON.stringify(full.text)}`);
  streamed = '';
  const st = await engine.generate(prompt, { maxTokens: 12, ignoreEos: true, stop: [stop], onToken: t => (streamed += t) });
  assert.equal(st.finishReason, 'stop');
  assert.equal(st.text, full.text.slice(0, full.text.indexOf(stop)));
  assert.equal(streamed, st.text);
  // Sampling: the same seed gives the same tokens.
  const a = await engine.generate(prompt, { maxTokens: 10, temperature: 1.2, topP: 0.95, seed: 42, ignoreEos: true });
  const b = await engine.generate(prompt, { maxTokens: 10, temperature: 1.2, topP: 0.95, seed: 42, ignoreEos: true });
  assert.deepEqual(a.tokens, b.tokens);
  const c = await engine.generate(prompt, { maxTokens: 0 });
  assert.equal(c.finishReason, 'length');
  assert.equal(c.text, '');
  await assert.rejects(engine.generate(prompt, { maxTokens: -1 }), (e: EngineError) => e.code === 'BAD_REQUEST' && e.field === 'maxTokens');
  // A consumer whose callback throws gets its error back; the engine keeps serving.
  await assert.rejects(engine.generate(prompt, { maxTokens: 12, ignoreEos: true, onToken: () => { throw new Error('consumer bug'); } }), /consumer bug/);
  assert.deepEqual((await engine.generate(prompt, { maxTokens: 12, ignoreEos: true })).tokens, full.tokens);
});

test('EOS ends generation', async () => {
  // Find a prompt after which the greedy model emits EOS, by making EOS the greedy choice at step k:
  // we cannot steer the weights, so check the contract on what the model does: either EOS appears in
  // the ignoreEos run (then the normal run stops right before it), or it never does.
  await engine.reload(byVariant('full').dir);
  const eos = engine.manifest.eos_token_id!;
  for (const prompt of byVariant('full').ref.prompts) {
    const long = await engine.generate(prompt, { maxTokens: 40, ignoreEos: true, reuseCache: false });
    const normal = await engine.generate(prompt, { maxTokens: 40, reuseCache: false });
    const at = long.tokens.indexOf(eos);
    if (at >= 0) {
      assert.equal(normal.finishReason, 'eos');
      assert.deepEqual(normal.tokens, long.tokens.slice(0, at));
    } else assert.deepEqual(normal.tokens, long.tokens);
  }
});

test('bad exports fail with clear errors; a failed reload keeps the old export serving', async () => {
  const good = byVariant('prefix_tuning').dir;
  await engine.reload(good);
  const before = await engine.generate('x = ', { maxTokens: 3, ignoreEos: true });
  const cases: [string, (dir: string) => void, string, RegExp][] = [
    ['truncated model', d => fs.truncateSync(path.join(d, 'model.onnx'), 1000), 'MODEL_LOAD_FAILED', /model\.onnx/],
    ['garbage model', d => fs.writeFileSync(path.join(d, 'model.onnx'), 'not an onnx file'), 'MODEL_LOAD_FAILED', /model\.onnx/],
    ['future format', d => editManifest(d, m => (m.format_version = 7)), 'MANIFEST_VERSION', /format_version 7/],
    ['older export', d => editManifest(d, m => (m.format_version = 5)), 'MANIFEST_VERSION', /format_version 5 .*older version of the trainer/],
    ['missing external data', d => editManifest(d, m => (m.files.model_data = [...m.files.model_data, 'gone.onnx.data'])), 'FILE_MISSING', /gone\.onnx\.data/],
    ['no tokenizer', d => fs.rmSync(path.join(d, 'tokenizer.json')), 'FILE_MISSING', /tokenizer\.json/],
    ['broken tokenizer', d => fs.writeFileSync(path.join(d, 'tokenizer.json'), '{"model": 1'), 'TOKENIZER_INVALID', /tokenizer\.json/],
    ['layers', d => editManifest(d, m => (m.num_layers -= 1)), 'MODEL_MISMATCH', /past_key_values/],
    ['heads', d => editManifest(d, m => { m.num_heads *= 2; m.head_dim /= 2; }), 'MODEL_MISMATCH', /num_heads|dim/],
    ['vocab', d => editManifest(d, m => (m.vocab_size += 1)), 'MODEL_MISMATCH', /vocab_size/],
    ['prefix length', d => editManifest(d, m => (m.prefix_length += 1)), 'PREFIX_KV_INVALID', /prefix_length/],
    ['truncated prefix', d => fs.truncateSync(path.join(d, 'prefix_kv.safetensors'), 100), 'PREFIX_KV_INVALID', /prefix_kv\.safetensors/],
    ['no prefix', d => fs.rmSync(path.join(d, 'prefix_kv.safetensors')), 'FILE_MISSING', /prefix_kv/],
  ];
  for (const [name, breakIt, code, re] of cases) {
    const dir = copyExport(good);
    try {
      breakIt(dir);
      await assert.rejects(engine.reload(dir), (e: EngineError) => {
        assert.equal(e.code, code, `${name}: ${e.message}`);
        assert.match(e.message, re, name);
        assert.ok(e.message.includes(dir), `${name}: the message names the export: ${e.message}`);
        assert.ok(e.hint, `${name}: has a hint`);
        return true;
      });
      if (name === 'truncated model') await assert.rejects(CompletionEngine.load(dir, opts), (e: EngineError) => e.code === code);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const after = await engine.generate('x = ', { maxTokens: 3, ignoreEos: true });
  assert.deepEqual(after.tokens, before.tokens);
  assert.equal(engine.exportDir, good);
  await assert.rejects(CompletionEngine.load('/nonexistent/export'), (e: EngineError) => e.code === 'EXPORT_NOT_FOUND');
});

test('a run folder is accepted in place of its export folder', async () => {
  const run = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'bloom-run-'));
  try {
    fs.cpSync(byVariant('lora').dir, path.join(run, 'export'), { recursive: true });
    await engine.reload(run);
    assert.equal(engine.exportDir, path.join(run, 'export'));
  } finally {
    fs.rmSync(run, { recursive: true, force: true });
  }
});
