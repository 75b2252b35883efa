// Engine measurements for `npm run bench` (scripts/bench-engine.ts and engine_ab.ts call this; no vscode, no test
// framework). Figures are per process on the machine it runs on: compare ratios, not absolute times.
import { CompletionEngine, type EngineOptions } from '../../src/inference/engine';

export interface EngineBench {
  exportDir: string;
  loadMs: number;
  promptTokens: number;
  /** Time to the first token of a prompt with an empty cache (median of `repeats`). */
  coldFirstTokenMs: number;
  /** The same prompt plus one typed character, right after the prompt was served (median). */
  warmFirstTokenMs: number;
  warmOverCold: number;
  reusedTokens: number;
  /** Decode only (prefill excluded), greedy, EOS ignored. */
  decodeMsPerToken: number;
  decodeTokens: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

export async function benchEngine(exportDir: string, prompt: string, opts: EngineOptions & { decodeTokens?: number; repeats?: number } = {}): Promise<EngineBench> {
  const t0 = performance.now();
  const engine = await CompletionEngine.load(exportDir, opts);
  const loadMs = performance.now() - t0;
  try {
    const repeats = opts.repeats ?? 3;
    const decodeTokens = opts.decodeTokens ?? 64;
    await engine.generate(prompt, { maxTokens: 2, ignoreEos: true, reuseCache: false }); // warm-up
    const cold: number[] = [];
    const warm: number[] = [];
    let reused = 0;
    let promptTokens = 0;
    for (let i = 0; i < repeats; i++) {
      const typed = prompt + 'abcdefghij'[i];
      let t = performance.now();
      const c = await engine.generate(typed, { maxTokens: 1, ignoreEos: true, reuseCache: false });
      cold.push(performance.now() - t);
      promptTokens = c.timings.promptTokens;
      await engine.generate(prompt, { maxTokens: 1, ignoreEos: true });
      t = performance.now();
      const w = await engine.generate(typed, { maxTokens: 1, ignoreEos: true });
      warm.push(performance.now() - t);
      reused = w.timings.reusedTokens;
    }
    // Decode: the median of `repeats` runs (a sub-millisecond step is at the mercy of one scheduler hiccup)
    const decodes: number[] = [];
    let d = await engine.generate(prompt, { maxTokens: decodeTokens, ignoreEos: true, reuseCache: false }); // warm-up
    for (let i = 0; i < repeats; i++) {
      d = await engine.generate(prompt, { maxTokens: decodeTokens, ignoreEos: true, reuseCache: false });
      // The first generated token comes from the prefill's logits; each later one costs one step.
      decodes.push(d.timings.decodeMs / Math.max(1, d.tokens.length - 1));
    }
    return {
      exportDir,
      loadMs,
      promptTokens,
      coldFirstTokenMs: median(cold),
      warmFirstTokenMs: median(warm),
      warmOverCold: median(warm) / median(cold),
      reusedTokens: reused,
      decodeMsPerToken: median(decodes),
      decodeTokens: d.tokens.length,
    };
  } finally {
    await engine.dispose();
  }
}

/** Single-thread memory copy bandwidth in bytes/s (read + write counted), the bound for decode steps. */
export function copyBandwidth(bytes = 256 * 2 ** 20, rounds = 5): number {
  const a = new Float64Array(bytes / 8).fill(1);
  const b = new Float64Array(bytes / 8);
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    b.set(a);
    best = Math.min(best, performance.now() - t);
  }
  return (2 * bytes) / (best / 1000);
}
