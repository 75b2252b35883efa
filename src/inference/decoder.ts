// The ONNX "decoder with past" session (runs inside the worker only: onnxruntime-node's run() blocks
// the thread it runs on). Checks the graph against the manifest at load, then runs forward steps.
import os from 'node:os';
import './telemetry'; // before onnxruntime-node loads
import * as ort from 'onnxruntime-node';
import { EngineError } from './errors';
import { type KvCache, type KvData, emptyKv, fromFloat16Bits, pastRows, resizeKv, toFloat16Bits, writeSlots } from './kv';
import type { ExportFiles, ExportManifest } from './manifest';
import { readSafetensors, tensorData } from './safetensors';

export interface DecoderOptions {
  /** onnxruntime intra-op threads (default: half the cores, at least 2 where there are 2, at most 4; see defaultThreads). */
  threads?: number;
  /**
   * onnxruntime graph optimization. 'all' (default) decodes fastest on CPU but its layout passes make
   * session creation slow (seconds for big graphs); 'extended' loads in a fraction of that time.
   */
  optimization?: GraphOptimization;
}

/**
 * Intra-op threads when the caller names none: half the cores (room for the editor and a training run), but 2 on a
 * 2-core machine. There one thread decoded half as much text within the 300 ms ghost-text budget (7 vs 13 tokens at
 * the median, and cold requests late; docs/benchmarks.md, 2026-12-01 pipeline run), and the engine only runs while
 * the user pauses: the next keystroke aborts it within one step.
 */
export function defaultThreads(cores: number): number {
  return cores <= 2 ? Math.max(1, cores) : Math.min(4, Math.max(2, Math.floor(cores / 2)));
}

/** Slots are added in steps of this many positions (fewer reallocations; the free ones are never read). */
const SLOT_STEP = 64;

export type GraphOptimization = 'disabled' | 'basic' | 'extended' | 'all';

export class DecoderModel {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly manifest: ExportManifest,
    /** KV of the trained virtual tokens / prefix (prompt-learning methods), or empty. */
    readonly prefix: KvCache,
    private readonly logitsHalf: boolean,
    readonly threads: number,
  ) {
    const names = (base: string) => Array.from({ length: manifest.num_layers }, (_, i) => [`${base}.${i}.key`, `${base}.${i}.value`]).flat();
    this.pastNames = names('past_key_values');
    // the cache lives in slots this engine owns: only the new positions' KV comes out of a step
    const fresh = names('new_key_values');
    this.fetches = ['logits', 'next_tokens', ...fresh];
    this.greedyFetches = ['next_tokens', ...fresh];
  }

  /** Graph input names of the past, and the outputs a step fetches (a greedy step: no logits): the same every step. */
  private readonly pastNames: string[];
  private readonly fetches: string[];
  private readonly greedyFetches: string[];

  static async load(files: ExportFiles, manifest: ExportManifest, opts: DecoderOptions = {}): Promise<DecoderModel> {
    const threads = opts.threads ?? defaultThreads(os.availableParallelism());
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(files.model, {
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: opts.optimization ?? 'all',
      });
    } catch (e) {
      throw new EngineError('MODEL_LOAD_FAILED', `onnxruntime could not load ${files.model}: ${(e as Error).message}`, {
        path: files.model,
        hint: 'the model file is corrupt or incomplete (interrupted export or copy); export the run again',
        cause: e,
      });
    }
    try {
      const logitsHalf = checkGraph(session, manifest, files.model);
      const prefix = manifest.prefix_length > 0 ? loadPrefix(files.prefixKv!, manifest) : emptyKv(manifest.num_layers, manifest.dtype);
      const model = new DecoderModel(session, manifest, prefix, logitsHalf, threads);
      await model.probe(files.model);
      return model;
    } catch (e) {
      await session.release().catch(() => {});
      throw e;
    }
  }

  /**
   * Runs `ids` after the cached positions `past`; returns the logits of the last new position (float32, a copy), their
   * argmax from the graph (`next`, the greedy token) and the cache of past + ids. The new positions are written into
   * `past`'s free slots when it has room (else into a larger copy): after this call, use only the returned cache.
   * `reserve` = the positions the caller expects to hold in all, so a growing cache is reallocated once.
   */
  async forward(ids: readonly number[], past: KvCache, reserve = 0): Promise<{ logits: Float32Array; next: number; kv: KvCache }> {
    const { out, kv } = await this.run(ids, past, reserve, this.fetches, 1);
    const logitsT = out.logits;
    const v = this.manifest.vocab_size;
    const raw = logitsT.data as Float32Array | Uint16Array;
    const row = raw.subarray(raw.length - v);
    // onnxruntime-node hands each output over in a fresh buffer of its own: when that buffer is exactly the row (one
    // kept position, float32) it is the copy already (a second one cost ~1 ms a step for a 250k vocabulary)
    const own = row.byteOffset === 0 && row.byteLength === row.buffer.byteLength;
    const logits = this.logitsHalf ? fromFloat16Bits(row as Uint16Array) : own ? (row as Float32Array) : (row as Float32Array).slice();
    logitsT.dispose();
    return { logits, next: nextTokens(out)[0]!, kv };
  }

  /**
   * As `forward`, for greedy decoding: only the graph's argmax of the last position's logits (`next_tokens`) leaves
   * onnxruntime, not the vocabulary-sized row (1 MB a step for bloom, and the scan over it).
   */
  async forwardGreedy(ids: readonly number[], past: KvCache, reserve = 0): Promise<{ next: number; kv: KvCache }> {
    const { out, kv } = await this.run(ids, past, reserve, this.greedyFetches, 1);
    return { next: nextTokens(out)[0]!, kv };
  }

  /**
   * Greedy decoding with drafted tokens: `ids` = [the greedy token, drafts...]. Returns the graph's argmax after each
   * of them (`nexts[i]` follows ids[0..i]) and the cache of past + all of `ids`; the caller keeps the drafts that
   * equal the argmax before them (truncateKv drops the rest). One run reads the weights once for every position.
   */
  async forwardDrafted(ids: readonly number[], past: KvCache, reserve = 0): Promise<{ nexts: number[]; kv: KvCache }> {
    const { out, kv } = await this.run(ids, past, reserve, this.greedyFetches, ids.length);
    return { nexts: nextTokens(out), kv };
  }

  private async run(ids: readonly number[], past: KvCache, reserve: number, fetches: string[], keep: number): Promise<{ out: ort.InferenceSession.OnnxValueMapType; kv: KvCache }> {
    const m = this.manifest;
    const n = ids.length;
    const total = past.length + n;
    const kv = past;
    const slots = kv.capacity;
    // The filled rows of the slot arrays go in as views (no copy), so the free slots cost nothing.
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, n]),
      past_length: new ort.Tensor('int64', BigInt64Array.of(BigInt(kv.length)), []),
      logits_to_keep: new ort.Tensor('int64', BigInt64Array.of(BigInt(keep)), []),
    };
    const row = m.num_heads * m.head_dim;
    const pastTensor = (a: KvData) => {
      const rows = pastRows(a, kv.length, m.num_heads, m.head_dim);
      return new ort.Tensor(m.dtype, rows, [rows.length / row, m.num_heads, m.head_dim]);
    };
    for (let i = 0; i < m.num_layers; i++) {
      feeds[this.pastNames[2 * i]] = pastTensor(kv.keys[i]);
      feeds[this.pastNames[2 * i + 1]] = pastTensor(kv.values[i]);
    }
    let out: ort.InferenceSession.OnnxValueMapType;
    try {
      out = await this.session.run(feeds, fetches);
    } catch (e) {
      throw new EngineError('INFERENCE_FAILED', `onnxruntime run failed: ${(e as Error).message}`, { cause: e });
    }
    const want = n * m.num_heads * m.head_dim;
    const dst = slots >= total ? kv : resizeKv(kv, Math.ceil(Math.max(total, reserve, kv.capacity * 1.25) / SLOT_STEP) * SLOT_STEP, m.num_heads, m.head_dim);
    for (let i = 0; i < m.num_layers; i++) {
      for (const [part, to] of [['key', dst.keys[i]], ['value', dst.values[i]]] as const) {
        const fresh = out[`new_key_values.${i}.${part}`].data as KvData;
        if (fresh.length !== want) {
          throw new EngineError('MODEL_MISMATCH', `new_key_values.${i}.${part} has ${fresh.length} values for ${n} new token(s), expected ${want} = ${n} x heads ${m.num_heads} x head_dim ${m.head_dim}`, {
            hint: 'manifest.json does not describe this model.onnx; export the run again',
          });
        }
        writeSlots(to, kv.length, fresh, m.num_heads, m.head_dim);
      }
    }
    return { out, kv: { length: total, capacity: dst.capacity, keys: dst.keys, values: dst.values } };
  }

  async release(): Promise<void> {
    await this.session.release();
  }

  /** One real step at load: catches graphs whose dynamic shapes disagree with the manifest. */
  private async probe(where: string): Promise<void> {
    const m = this.manifest;
    const token = m.bos_token_id ?? m.eos_token_id ?? 0;
    let res: { logits: Float32Array; next: number; kv: KvCache };
    try {
      res = await this.forward([token], this.prefix);
    } catch (e) {
      throw new EngineError('MODEL_MISMATCH', `${where}: a test step failed: ${(e as Error).message}`, {
        path: where,
        hint: 'the graph does not follow the export contract for the manifest\'s shapes (docs/export.md); export the run again',
      });
    }
    const want = res.kv.capacity * m.num_heads * m.head_dim;
    const got = res.kv.keys[0].length;
    if (res.logits.length !== m.vocab_size || got !== want || res.kv.length !== m.prefix_length + 1 || !(res.next >= 0 && res.next < m.vocab_size)) {
      throw new EngineError('MODEL_MISMATCH', `${where}: a test step returned logits of ${res.logits.length} (manifest vocab_size ${m.vocab_size}), next_tokens [${res.next}] and a cache of ${got} values for ${res.kv.length} positions (expected ${want} = ${res.kv.capacity} x heads ${m.num_heads} x head_dim ${m.head_dim}, ${m.prefix_length + 1} positions)`, {
        path: where,
        hint: 'manifest.json does not describe this model.onnx; export the run again',
      });
    }
  }
}

/** The graph's greedy tokens (next_tokens, int64 [kept]: the argmax of each kept position's logits). */
function nextTokens(out: ort.InferenceSession.OnnxValueMapType): number[] {
  return Array.from(out.next_tokens.data as BigInt64Array, Number);
}

/** Checks input/output names, element types and static dims; returns whether logits are float16. */
function checkGraph(session: ort.InferenceSession, m: ExportManifest, where: string): boolean {
  const mismatch = (msg: string): never => {
    throw new EngineError('MODEL_MISMATCH', `${where}: ${msg}`, { path: where, hint: 'manifest.json and model.onnx come from different exports, or the graph was not made by the bloom_peft exporter; export the run again' });
  };
  const wantIn = ['input_ids', 'past_length', 'logits_to_keep'];
  const wantOut = ['logits', 'next_tokens'];
  for (let i = 0; i < m.num_layers; i++) {
    wantIn.push(`past_key_values.${i}.key`, `past_key_values.${i}.value`);
    wantOut.push(`new_key_values.${i}.key`, `new_key_values.${i}.value`);
  }
  const missingIn = wantIn.filter(n => !session.inputNames.includes(n));
  if (missingIn.length) mismatch(`graph lacks input(s) ${missingIn.slice(0, 4).join(', ')}${missingIn.length > 4 ? ', ...' : ''} (manifest num_layers ${m.num_layers}; graph inputs: ${session.inputNames.slice(0, 6).join(', ')}...)`);
  const extraIn = session.inputNames.filter(n => !wantIn.includes(n));
  if (extraIn.length) mismatch(`graph has input(s) this engine does not feed: ${extraIn.slice(0, 4).join(', ')} (manifest num_layers ${m.num_layers})`);
  const missingOut = wantOut.filter(n => !session.outputNames.includes(n));
  if (missingOut.length) mismatch(`graph lacks output(s) ${missingOut.slice(0, 4).join(', ')}`);

  let logitsHalf = false;
  const meta = (session as unknown as { inputMetadata?: ort.InferenceSession.ValueMetadata[]; outputMetadata?: ort.InferenceSession.ValueMetadata[] });
  const kvShape = [null, m.num_heads, m.head_dim];
  const check = (md: ort.InferenceSession.ValueMetadata, shape: (number | null)[], type: string) => {
    if (!md.isTensor) return mismatch(`"${md.name}" is not a tensor`);
    if (md.type !== type) mismatch(`"${md.name}" has element type ${md.type}, expected ${type} (manifest dtype ${m.dtype})`);
    if (md.shape.length !== shape.length) mismatch(`"${md.name}" has rank ${md.shape.length}, expected ${shape.length}`);
    md.shape.forEach((d, k) => {
      if (typeof d === 'number' && d >= 0 && shape[k] !== null && d !== shape[k]) {
        mismatch(`"${md.name}" has dim ${k} = ${d}, expected ${shape[k]} (shape [positions, num_heads ${m.num_heads}, head_dim ${m.head_dim}] / logits [1, seq, vocab_size ${m.vocab_size}])`);
      }
    });
  };
  for (const md of meta.inputMetadata ?? []) {
    if (md.name === 'input_ids') check(md, [1, null], 'int64');
    else if (md.name === 'logits_to_keep' || md.name === 'past_length') check(md, [], 'int64');
    else check(md, kvShape, m.dtype);
  }
  for (const md of meta.outputMetadata ?? []) {
    if (md.name === 'logits') {
      if (md.isTensor && md.type === 'float16') logitsHalf = true;
      check(md, [1, null, m.vocab_size], logitsHalf ? 'float16' : 'float32');
    } else if (md.name === 'next_tokens') check(md, [null], 'int64');
    else if (md.name.startsWith('new_key_values.')) check(md, kvShape, m.dtype);
  }
  return logitsHalf;
}

/** prefix_kv.safetensors -> the initial cache; names and shapes checked against the manifest. */
function loadPrefix(file: string, m: ExportManifest): KvCache {
  const tensors = readSafetensors(file);
  const want = [m.prefix_length, m.num_heads, m.head_dim];
  const kv: KvCache = { length: m.prefix_length, capacity: m.prefix_length, keys: [], values: [] };
  for (let i = 0; i < m.num_layers; i++) {
    for (const part of ['key', 'value'] as const) {
      const name = `past_key_values.${i}.${part}`;
      const t = tensors.get(name);
      if (!t) throw new EngineError('PREFIX_KV_INVALID', `${file}: tensor "${name}" is missing (manifest num_layers ${m.num_layers})`, { path: file, field: name, hint: 'export the run again' });
      if (t.shape.length !== 3 || t.shape.some((d, k) => d !== want[k])) {
        throw new EngineError('PREFIX_KV_INVALID', `${file}: tensor "${name}" has shape [${t.shape}], expected [${want}] = [prefix_length, num_heads, head_dim] from the manifest`, { path: file, field: name, hint: 'manifest.json and prefix_kv.safetensors come from different exports; export the run again' });
      }
      let data = tensorData(t);
      if (m.dtype === 'float16' && data instanceof Float32Array) data = toFloat16Bits(data);
      if (m.dtype === 'float32' && data instanceof Uint16Array) data = fromFloat16Bits(data);
      (part === 'key' ? kv.keys : kv.values).push(data);
    }
  }
  return kv;
}
