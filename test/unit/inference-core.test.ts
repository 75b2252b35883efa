// The engine's pure parts: sampling, stop sequences, safetensors, KV slicing, half floats, manifest
// checks and the streaming decoder. No model, no worker: fast.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { argmax, createRng, sampleToken } from '../../src/inference/sampling';
import { StopMatcher } from '../../src/inference/stop';
import { parseSafetensors, tensorData } from '../../src/inference/safetensors';
import { commonPrefixLength, fromFloat16Bits, pastRows, resizeKv, toFloat16Bits, truncateKv, writeSlots } from '../../src/inference/kv';
import { checkManifest, readManifest } from '../../src/inference/manifest';
import type { EngineError } from '../../src/inference/errors';
import { validateParams } from '../../src/inference/generator';
import { defaultThreads } from '../../src/inference/decoder';
import { lookupDraft } from '../../src/inference/draft';
import { formatPrompt } from '../../src/inference/template';

test('engine threads by default: half the cores up to 4, but both cores of a 2-core machine', () => {
  assert.deepEqual([1, 2, 3, 4, 6, 8, 16, 64].map(defaultThreads), [1, 2, 2, 2, 3, 4, 4, 4]);
});

test('argmax picks the first maximum and ignores NaN', () => {
  assert.equal(argmax([1, 3, 3, 2]), 1);
  assert.equal(argmax([NaN, -1, -2]), 1);
});

test('greedy sampling ignores the rng; same seed gives the same draws', () => {
  const logits = Float32Array.from({ length: 50 }, (_, i) => Math.sin(i) * 3);
  assert.equal(sampleToken(logits, { temperature: 0, topP: 1 }, () => 0.99), argmax(logits));
  const draw = (seed: number) => {
    const rng = createRng(seed);
    return Array.from({ length: 20 }, () => sampleToken(logits, { temperature: 1, topP: 0.9 }, rng));
  };
  assert.deepEqual(draw(7), draw(7));
  assert.notDeepEqual(draw(7), draw(8));
});

test('top-p keeps exactly the nucleus and samples in proportion', () => {
  // probs 0.5, 0.25, 0.125, 0.0625, ... : topP 0.8 keeps the first three (0.875 >= 0.8)
  const logits = Float32Array.from({ length: 12 }, (_, i) => -i * Math.log(2));
  const rng = createRng(1);
  const counts = new Array(12).fill(0);
  const n = 20000;
  for (let i = 0; i < n; i++) counts[sampleToken(logits, { temperature: 1, topP: 0.8 }, rng)]++;
  assert.deepEqual(counts.slice(3), new Array(9).fill(0));
  const expect = [0.5, 0.25, 0.125].map(p => p / 0.875);
  for (let k = 0; k < 3; k++) assert.ok(Math.abs(counts[k] / n - expect[k]) < 0.02, `token ${k}: ${counts[k] / n} vs ${expect[k]}`);
  // A flat distribution over a large vocabulary: the threshold search must widen until the mass is reached.
  const flat = new Float32Array(100000);
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) seen.add(sampleToken(flat, { temperature: 1, topP: 0.5 }, rng));
  assert.ok(seen.size > 150 && [...seen].every(t => t < 50000), 'flat: only the first half (ties by id) is kept');
});

test('temperature sharpens the distribution', () => {
  const logits = Float32Array.from([2, 1, 0]);
  const share = (t: number) => {
    const rng = createRng(3);
    let top = 0;
    for (let i = 0; i < 5000; i++) top += sampleToken(logits, { temperature: t, topP: 1 }, rng) === 0 ? 1 : 0;
    return top / 5000;
  };
  assert.ok(share(0.3) > share(1) && share(1) > share(3));
});

test('stop sequences: text is held back while it may start a stop string, never leaked', () => {
  const m = new StopMatcher(['\n\n', 'END']);
  let out = '';
  const feed = (s: string) => {
    const r = m.push(s);
    out += r.emit;
    return r.stopped;
  };
  assert.equal(feed('hello'), false);
  assert.equal(out, 'hello');
  assert.equal(feed(' E'), false);
  assert.equal(out, 'hello '); // "E" may begin "END"
  assert.equal(feed('x'), false);
  assert.equal(out, 'hello Ex');
  assert.equal(feed('\n'), false);
  assert.equal(out, 'hello Ex');
  assert.equal(feed('\nmore'), true);
  assert.equal(out, 'hello Ex');
  const m2 = new StopMatcher(['END']);
  assert.equal(m2.push('abcEN').emit, 'abc');
  assert.equal(m2.flush(), 'EN');
  assert.deepEqual(new StopMatcher([]).push('x'), { emit: 'x', stopped: false });
  assert.deepEqual(new StopMatcher(['']).push('x'), { emit: 'x', stopped: false });
});

function safetensorsBytes(tensors: Record<string, { dtype: string; shape: number[]; data: Uint8Array }>): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const [k, t] of Object.entries(tensors)) {
    header[k] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
    off += t.data.byteLength;
  }
  const h = Buffer.from(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  let p = 8 + h.length;
  for (const t of Object.values(tensors)) {
    out.set(t.data, p);
    p += t.data.byteLength;
  }
  return out;
}

test('safetensors: parses tensors and rejects truncated or inconsistent files', () => {
  const a = Float32Array.from([1, 2, 3, 4, 5, 6]);
  const b = Uint16Array.from([0x3c00, 0xc000]); // 1.0, -2.0 in half
  const bytes = safetensorsBytes({
    a: { dtype: 'F32', shape: [1, 2, 3], data: new Uint8Array(a.buffer) },
    b: { dtype: 'F16', shape: [2], data: new Uint8Array(b.buffer) },
  });
  const t = parseSafetensors(bytes, 'x.safetensors');
  assert.deepEqual([...t.keys()], ['a', 'b']);
  assert.deepEqual(Array.from(tensorData(t.get('a')!)), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(Array.from(fromFloat16Bits(tensorData(t.get('b')!) as Uint16Array)), [1, -2]);
  const err = (buf: Uint8Array, re: RegExp) => assert.throws(() => parseSafetensors(buf, 'x.safetensors'), (e: EngineError) => e.code === 'PREFIX_KV_INVALID' && re.test(e.message) && /x\.safetensors/.test(e.message));
  err(bytes.subarray(0, 5), /too short/);
  err(bytes.subarray(0, bytes.length - 4), /data_offsets/);
  const badHeader = bytes.slice();
  badHeader[9] = 0x7b; // '{{' -> invalid JSON
  err(badHeader, /not valid JSON/);
  const huge = bytes.slice();
  new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
  err(huge, /exceeds the file size/);
});

test('KV truncation, resizing, slot writes and the past view keep every position\'s heads in order', () => {
  // position-major [positions, heads 2, head_dim 2]: value = pos*100 + head*10 + d
  const mk = () => Float32Array.from({ length: 12 }, (_, i) => Math.floor(i / 4) * 100 + Math.floor((i % 4) / 2) * 10 + (i % 2));
  const kv = { length: 3, capacity: 3, keys: [mk()], values: [mk()] };
  const cut = truncateKv(kv, 2);
  assert.equal(cut.length, 2);
  assert.equal(cut.keys[0], kv.keys[0]); // a view: no copy until the slots are reused
  assert.equal(truncateKv(kv, 3), kv);
  const packed = resizeKv(cut, 2, 2, 2);
  assert.deepEqual(Array.from(packed.keys[0]), [0, 1, 10, 11, 100, 101, 110, 111]);
  const roomy = resizeKv(cut, 4, 2, 2);
  assert.deepEqual(Array.from(roomy.keys[0]), [0, 1, 10, 11, 100, 101, 110, 111, 0, 0, 0, 0, 0, 0, 0, 0]);
  // one new position, both heads: [head0: 200, 201], [head1: 210, 211]
  writeSlots(roomy.keys[0], 2, Float32Array.from([200, 201, 210, 211]), 2, 2);
  assert.deepEqual(Array.from(roomy.keys[0]), [0, 1, 10, 11, 100, 101, 110, 111, 200, 201, 210, 211, 0, 0, 0, 0]);
  assert.throws(() => resizeKv(kv, 2, 2, 2), RangeError);
  // the graph's past: the filled rows as a view of the same memory; an empty cache as one row (masked by past_length 0)
  const view = pastRows(roomy.keys[0], 3, 2, 2);
  assert.equal(view.buffer, roomy.keys[0].buffer);
  assert.deepEqual(Array.from(view), [0, 1, 10, 11, 100, 101, 110, 111, 200, 201, 210, 211]);
  assert.equal(pastRows(roomy.keys[0], 0, 2, 2).length, 4);
  assert.deepEqual(Array.from(pastRows(new Float32Array(0), 0, 2, 2)), [0, 0, 0, 0]);
  assert.equal(commonPrefixLength([1, 2, 3], [1, 2, 4, 5]), 2);
  assert.equal(commonPrefixLength([], [1]), 0);
});

test('float16 conversion round-trips and rounds to nearest even', () => {
  const xs = Float32Array.from([0, -0, 1, -2.5, 65504, 1e-7, 6.1e-5, 3.14159, 1e9, -Infinity]);
  const back = fromFloat16Bits(toFloat16Bits(xs));
  const expected = [0, -0, 1, -2.5, 65504, 1.1920928955078125e-7, 6.097555160522461e-5, 3.140625, Infinity, -Infinity];
  assert.deepEqual(Array.from(back), expected);
  assert.ok(Number.isNaN(fromFloat16Bits(toFloat16Bits(Float32Array.from([NaN])))[0]));
  assert.equal(toFloat16Bits(Float32Array.from([1 + 2 ** -11]))[0], 0x3c00); // tie -> even
  assert.equal(toFloat16Bits(Float32Array.from([1 + 3 * 2 ** -11]))[0], 0x3c02);
});

const GOOD = {
  format_version: 6, method: 'lora', base_model: 'embedded', dtype: 'float32', quantization: 'none',
  num_layers: 2, num_heads: 4, head_dim: 16, hidden_size: 64, vocab_size: 512, prefix_length: 0,
  eos_token_id: 2, pad_token_id: 3, bos_token_id: 1, template: { prompt: 'Human: {instruction}\n{input}', response_prefix: '\n\nAssistant: ' },
  instruction_tuned: true, files: { model: 'model.onnx', model_data: [], tokenizer: 'tokenizer.json', prefix_kv: null },
};

test('manifest checks name the field and give a hint', () => {
  assert.equal(checkManifest(GOOD).method, 'lora');
  const bad = (patch: Record<string, unknown>, code: string, field: string) => {
    assert.throws(() => checkManifest({ ...GOOD, ...patch }, 'm.json'), (e: EngineError) => {
      assert.equal(e.code, code);
      assert.equal(e.field, field);
      assert.match(e.message, /m\.json/);
      assert.ok(e.hint && e.hint.length > 5);
      return true;
    });
  };
  bad({ format_version: 7 }, 'MANIFEST_VERSION', 'format_version');
  bad({ format_version: 5 }, 'MANIFEST_VERSION', 'format_version'); // older exports (one next_token): export again
  bad({ format_version: undefined }, 'MANIFEST_INVALID', 'format_version');
  bad({ method: 7 }, 'MANIFEST_INVALID', 'method');
  bad({ dtype: 'bfloat16' }, 'MANIFEST_INVALID', 'dtype');
  bad({ num_heads: 0 }, 'MANIFEST_INVALID', 'num_heads');
  bad({ hidden_size: 65 }, 'MANIFEST_INVALID', 'hidden_size');
  bad({ eos_token_id: 512 }, 'MANIFEST_INVALID', 'eos_token_id');
  bad({ prefix_length: 4 }, 'MANIFEST_INVALID', 'files.prefix_kv');
  bad({ template: { prompt: 1 } }, 'MANIFEST_INVALID', 'template');
  bad({ files: { tokenizer: 'tokenizer.json' } }, 'MANIFEST_INVALID', 'files.model');
  bad({ files: { ...GOOD.files, model_data: 'model.onnx.data' } }, 'MANIFEST_INVALID', 'files.model_data');
});

test('readManifest: missing folder, missing/corrupt manifest, missing files, paths outside the export', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bloom-manifest-'));
  try {
    const code = (fn: () => unknown, c: string, re: RegExp) => assert.throws(fn, (e: EngineError) => e.code === c && re.test(e.message));
    code(() => readManifest(path.join(dir, 'nope')), 'EXPORT_NOT_FOUND', /does not exist/);
    code(() => readManifest(dir), 'MANIFEST_INVALID', /manifest\.json is missing/);
    fs.writeFileSync(path.join(dir, 'manifest.json'), '{"format_version": 5,');
    code(() => readManifest(dir), 'MANIFEST_INVALID', /not valid JSON/);
    fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(GOOD));
    code(() => readManifest(dir), 'FILE_MISSING', /model\.onnx is missing \(named by "files\.model"/);
    fs.writeFileSync(path.join(dir, 'model.onnx'), 'x');
    code(() => readManifest(dir), 'FILE_MISSING', /tokenizer\.json/);
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{}');
    assert.equal(readManifest(dir).files.model, path.join(dir, 'model.onnx'));
    fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ ...GOOD, files: { ...GOOD.files, model_data: ['model.onnx.data'] } }));
    code(() => readManifest(dir), 'FILE_MISSING', /model\.onnx\.data is missing \(named by "files\.model_data\[0\]"/);
    fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ ...GOOD, files: { ...GOOD.files, model: '../model.onnx' } }));
    code(() => readManifest(dir), 'MANIFEST_INVALID', /outside the export folder/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('generate options are validated', () => {
  validateParams({ maxTokens: 0 });
  validateParams({ maxTokens: 5, temperature: 0.7, topP: 0.9, stop: ['\n'], seed: 3 });
  for (const p of [{ maxTokens: -1 }, { maxTokens: 1.5 }, { maxTokens: 4, temperature: -1 }, { maxTokens: 4, topP: 0 }, { maxTokens: 4, topP: 1.5 }, { maxTokens: 4, stop: [3] }]) {
    assert.throws(() => validateParams(p as never), (e: EngineError) => e.code === 'BAD_REQUEST' && e.field !== undefined);
  }
});

test('formatPrompt follows the training template', () => {
  const t = { prompt: 'Human: {instruction}\n{input}', response_prefix: '\n\nAssistant: ' };
  assert.equal(formatPrompt(t, { instruction: 'Convert to snake_case', input: 'Reset User' }), 'Human: Convert to snake_case\nReset User\n\nAssistant: ');
  assert.equal(formatPrompt(t, { instruction: 'Say hi' }), 'Human: Say hi\n\nAssistant: ');
});

test('lookupDraft: the tokens after the latest earlier occurrence of the last 3 tokens, else the last 2; none without one', () => {
  // 1 2 3 occurs twice before the end: the latest one (followed by 4 5 6) wins over the first (7 8 9)
  assert.deepEqual(lookupDraft([1, 2, 3, 7, 8, 9, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3], 3), [4, 5, 6]);
  assert.deepEqual(lookupDraft([1, 2, 3, 4, 5, 6, 0, 1, 2, 3], 2), [4, 5], 'at most max');
  // no 3-token match: the last 2 tokens (9 3) decide
  assert.deepEqual(lookupDraft([9, 3, 8, 8, 1, 5, 9, 3], 3), [8, 8, 1]);
  // an occurrence that runs into the newest tokens: the draft repeats the period
  assert.deepEqual(lookupDraft([4, 2, 4, 2], 3), [4, 2, 4]);
  assert.deepEqual(lookupDraft([0, 7, 7, 7], 3), [7, 7, 7]);
  assert.deepEqual(lookupDraft([1, 2, 3, 9, 1, 2, 3], 5), [9, 1, 2, 3, 9]);
  assert.deepEqual(lookupDraft([1, 2, 3, 4], 3), [], 'nothing repeats');
  assert.deepEqual(lookupDraft([1, 2, 1, 2], 0), [], 'max 0');
  assert.deepEqual(lookupDraft([5], 3), []);
  // the decode loop passes its next token apart from the cached ids: the same drafts as with it appended
  for (const text of [[1, 2, 3, 7, 8, 9, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3], [9, 3, 8, 8, 1, 5, 9, 3], [4, 2, 4, 2], [0, 7, 7, 7], [1, 2, 3, 9, 1, 2, 3], [1, 2, 3, 4], [5]]) {
    for (const max of [0, 2, 3, 5]) assert.deepEqual(lookupDraft(text.slice(0, -1), max, text.at(-1)), lookupDraft(text, max), `${text} max ${max}`);
  }
});
