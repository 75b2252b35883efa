// Engine measurements for the benches (engine_vs_torch.ts, engine_ab.ts; no vscode, no test framework). Figures
// are per process on the machine it runs on: compare ratios, not absolute times.
import fs from 'node:fs';
import path from 'node:path';
import { CompletionEngine, type EngineOptions } from '../../src/inference/engine';
import { median } from './load';

/** One measurement of a loaded engine: a cold first token, a warm one (+1 typed character), a greedy decode. */
export interface EngineSample {
  promptTokens: number;
  /** Time to the first token of the prompt (+ one character) with an empty cache. */
  coldFirstTokenMs: number;
  /** The same, right after the prompt itself was served (its KV reused). */
  warmFirstTokenMs: number;
  reusedTokens: number;
  /** Decode only (prefill excluded), greedy, EOS ignored. */
  decodeMsPerToken: number;
  decodeTokens: number;
}

export interface EngineBench extends Omit<EngineSample, 'promptTokens'> {
  exportDir: string;
  loadMs: number;
  promptTokens: number;
  warmOverCold: number;
}

/** `typed` is the one character appended for the cold and warm requests (vary it between samples). */
export async function sampleEngine(engine: CompletionEngine, prompt: string, decodeTokens: number, typed = 'a'): Promise<EngineSample> {
  let t = performance.now();
  const c = await engine.generate(prompt + typed, { maxTokens: 1, ignoreEos: true, reuseCache: false });
  const coldFirstTokenMs = performance.now() - t;
  await engine.generate(prompt, { maxTokens: 1, ignoreEos: true });
  t = performance.now();
  const w = await engine.generate(prompt + typed, { maxTokens: 1, ignoreEos: true });
  const warmFirstTokenMs = performance.now() - t;
  // one token a run (draft: false), as the baselines decode: random weights repeat tokens, which drafts would take
  const d = await engine.generate(prompt, { maxTokens: decodeTokens, ignoreEos: true, reuseCache: false, draft: false });
  // The first generated token comes from the prefill's logits; each later one costs one step.
  return {
    promptTokens: c.timings.promptTokens, coldFirstTokenMs, warmFirstTokenMs, reusedTokens: w.timings.reusedTokens,
    decodeMsPerToken: d.timings.decodeMs / Math.max(1, d.tokens.length - 1), decodeTokens: d.tokens.length,
  };
}

/** Loads an export, takes `repeats` samples after a warm-up, disposes it; medians of the samples. */
export async function benchEngine(exportDir: string, prompt: string, opts: EngineOptions & { decodeTokens?: number; repeats?: number } = {}): Promise<EngineBench> {
  const t0 = performance.now();
  const engine = await CompletionEngine.load(exportDir, opts);
  const loadMs = performance.now() - t0;
  try {
    const decodeTokens = opts.decodeTokens ?? 64;
    await engine.generate(prompt, { maxTokens: 2, ignoreEos: true, reuseCache: false }); // warm-up
    const samples: EngineSample[] = [];
    for (let i = 0; i < (opts.repeats ?? 3); i++) samples.push(await sampleEngine(engine, prompt, decodeTokens, 'abcdefghij'[i % 10]));
    const m = (k: keyof EngineSample) => median(samples.map(s => s[k]));
    return {
      exportDir, loadMs, promptTokens: m('promptTokens'), coldFirstTokenMs: m('coldFirstTokenMs'), warmFirstTokenMs: m('warmFirstTokenMs'),
      warmOverCold: m('warmFirstTokenMs') / m('coldFirstTokenMs'), reusedTokens: m('reusedTokens'), decodeMsPerToken: m('decodeMsPerToken'), decodeTokens: m('decodeTokens'),
    };
  } finally {
    await engine.dispose();
  }
}

/** Bytes of an export's graph and weight files (manifest files.model + files.model_data): what a decode step reads. */
export function exportWeightBytes(exportDir: string): number {
  const m = JSON.parse(fs.readFileSync(path.join(exportDir, 'manifest.json'), 'utf8')) as { files: { model: string; model_data?: string[] | null } };
  return [m.files.model, ...(m.files.model_data ?? [])].reduce((s, f) => s + fs.statSync(path.resolve(exportDir, f)).size, 0);
}
