// llama.cpp through node-llama-cpp, the completion engine's peer in `npm run bench`. node-llama-cpp is installed
// into this folder by the bench on demand (pinned by package-lock.json, `npm ci --ignore-scripts --omit=optional`:
// no install script runs and only the linux-x64 CPU prebuilt comes down); it is never a dependency of the extension.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const PEER_DIR = __dirname;
const ENTRY = path.join(PEER_DIR, 'node_modules/node-llama-cpp/dist/index.js');

/** Installs node-llama-cpp from the lock file when missing; returns a reason when this machine cannot run it. */
export function ensurePeerInstalled(): string | undefined {
  if (process.platform !== 'linux' || process.arch !== 'x64') return `llama.cpp peer: only the linux-x64 CPU prebuilt is pinned (this is ${process.platform}-${process.arch})`;
  const lock = fs.readFileSync(path.join(PEER_DIR, 'package-lock.json'));
  const stamp = path.join(PEER_DIR, 'node_modules/.bench-lock');
  if (fs.existsSync(ENTRY) && fs.existsSync(stamp) && fs.readFileSync(stamp).equals(lock)) return undefined;
  const r = spawnSync('npm', ['ci', '--ignore-scripts', '--omit=optional', '--no-audit', '--no-fund'], { cwd: PEER_DIR, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) return `llama.cpp peer: npm ci in ${PEER_DIR} failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}`;
  fs.writeFileSync(stamp, lock);
  return undefined;
}

export interface PeerRun {
  /** Time to the first token of the prompt, from an empty KV cache. */
  prefillMs: number;
  /** Per token after the first (each one step), greedy. */
  decodeMsPerToken: number;
  tokens: number[];
}

export interface PeerModel {
  /** Greedy generation of `newTokens` tokens after the prompt ids (the cache is cleared first). */
  run(promptIds: number[], newTokens: number): Promise<PeerRun>;
  /** The next-token distribution after the prompt (softmax of the logits, temperature 1), for a parity check. */
  probabilities(promptIds: number[]): Promise<Map<number, number>>;
  dispose(): Promise<void>;
}

// The few node-llama-cpp calls used here (its own types are not installed for the project's type check)
interface Sequence {
  evaluate(tokens: number[], opts: { temperature: number }): AsyncGenerator<number, void, void>;
  evaluateWithMetadata(tokens: number[], meta: { probabilities: true }, opts: { temperature: number; topK: number; topP: number; minP: number }): AsyncGenerator<{ token: number; probabilities: Map<number, number> }, void, void>;
  clearHistory(): Promise<void>;
}
interface Context { getSequence(): Sequence; dispose(): Promise<void> }
interface Model { createContext(o: Record<string, unknown>): Promise<Context>; dispose(): Promise<void> }
interface Llama { loadModel(o: Record<string, unknown>): Promise<Model>; dispose(): Promise<void> }

/** Loads a GGUF on the CPU with `threads` threads and a context for one prompt of up to `contextSize` tokens. */
export async function loadPeer(gguf: string, threads: number, contextSize: number): Promise<PeerModel> {
  const { getLlama } = (await import(ENTRY)) as { getLlama(o: Record<string, unknown>): Promise<Llama> };
  // build 'never' and skipDownload: the prebuilt binary or nothing (no compiler, no network at bench time)
  const llama = await getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, progressLogs: false, logLevel: 'error', maxThreads: threads });
  const model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
  // one batch holds the whole prompt, as the engine's prefill does
  const context = await model.createContext({ contextSize, batchSize: contextSize, threads, sequences: 1, flashAttention: false });
  const sequence = context.getSequence();
  return {
    async run(promptIds, newTokens) {
      await sequence.clearHistory();
      const tokens: number[] = [];
      const t0 = performance.now();
      let tFirst = t0;
      for await (const token of sequence.evaluate(promptIds, { temperature: 0 })) {
        tokens.push(token);
        if (tokens.length === 1) tFirst = performance.now();
        if (tokens.length >= newTokens) break;
      }
      const tEnd = performance.now();
      return { prefillMs: tFirst - t0, decodeMsPerToken: (tEnd - tFirst) / Math.max(1, tokens.length - 1), tokens };
    },
    async probabilities(promptIds) {
      await sequence.clearHistory();
      for await (const out of sequence.evaluateWithMetadata(promptIds, { probabilities: true }, { temperature: 1, topK: 0, topP: 1, minP: 0 })) return out.probabilities;
      throw new Error('llama.cpp generated nothing');
    },
    async dispose() {
      await context.dispose();
      await model.dispose();
      await llama.dispose();
    },
  };
}
