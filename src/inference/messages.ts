// The typed protocol between the host (CompletionEngine) and the engine process (worker.ts, a child process).
// Requests carry an id; the engine answers each with exactly one `result` or `error`, preceded by any number of
// `token` notifications. `abort` is the one message the engine handles at once, not after the request in flight:
// it records the id, and the decode loop checks it before every model step (onnxruntime-node's run() yields to the
// event loop between steps, so the message is read while a generation runs).
import type { SerializedEngineError } from './errors';
import type { GraphOptimization } from './decoder';
import type { ExportManifest } from './manifest';
import type { GenerationDeadline } from './stop';

/** 'deadline': the next step would have ended after GenerateParams.deadline. */
export type FinishReason = 'eos' | 'stop' | 'length' | 'aborted' | 'deadline';

export interface GenerateParams {
  /** Tokens to generate at most (0: only prefill the prompt, which warms the KV cache). */
  maxTokens: number;
  /** 0 (default) = greedy. */
  temperature?: number;
  /** Nucleus mass in (0, 1]; 1 (default) = no cut. */
  topP?: number;
  /** Generation ends before the first occurrence of any of these; the text never includes it. */
  stop?: string[];
  /** Seed for sampling (same seed, same prompt -> same tokens). */
  seed?: number;
  /** false: ignore the cached KV of the previous prompt (default true). */
  reuseCache?: boolean;
  /** Keep generating past EOS (benchmarks and tests that need a fixed token count). */
  ignoreEos?: boolean;
  /** false: greedy decoding runs one token a run, without drafts from the text (default true; benchmarks that compare
   * the cost of a decode step with other engines'). */
  draft?: boolean;
  /** Single-line completions end at the line's end, before the token that holds the line break is run:
   * 'first' = at the first line break; 'afterText' = at the first one after other text (leading line breaks are
   * kept: after `def f():` the next line is the completion). The text ends before that line break. */
  stopAtNewline?: 'first' | 'afterText';
  /** Ghost text promised by a moment: no model step is started that would end after it (src/inference/stop.ts). */
  deadline?: GenerationDeadline;
}

export interface GenerateTimings {
  /** Tokenize + prefill of the prompt tokens not reused (the queue wait is queuedMs). */
  prefillMs: number;
  decodeMs: number;
  /** Prompt tokens whose KV came from the previous request. */
  reusedTokens: number;
  promptTokens: number;
  generatedTokens: number;
  /** Time the request waited for the worker (earlier requests, or a reload). */
  queuedMs?: number;
  /** When the worker finished (wallClock ms, src/inference/stop.ts): the caller measures its hand-off from it. */
  endedAt?: number;
}

export interface GenerateResult {
  text: string;
  /** Generated token ids (EOS excluded; a token that completed a stop sequence included). */
  tokens: number[];
  finishReason: FinishReason;
  timings: GenerateTimings;
}

/** What the host tells the engine process at start (its first argument, JSON). */
export interface WorkerInit {
  exportDir: string;
  threads?: number;
  optimization?: GraphOptimization;
}

export interface EngineInfo {
  exportDir: string;
  loadMs: number;
  threads: number;
  modelPath: string;
  /** The engine process (its /proc entry: memory). */
  pid: number;
}

export type HostToWorker =
  | { type: 'generate'; id: number; prompt: string; params: GenerateParams; stream: boolean }
  /** Logits of the last prompt position, computed without the cache (parity checks, scoring). */
  | { type: 'logits'; id: number; prompt: string }
  | { type: 'tokenize'; id: number; text: string }
  | { type: 'resetCache'; id: number }
  /** Stop request `id` before its next model step (handled as it arrives, not queued). */
  | { type: 'abort'; id: number }
  /** Release the session and exit the process. */
  | { type: 'close' };

export type WorkerToHost =
  | { type: 'ready'; manifest: ExportManifest; info: EngineInfo }
  | { type: 'loadError'; error: SerializedEngineError }
  | { type: 'token'; id: number; text: string }
  | { type: 'result'; id: number; result: GenerateResult }
  | { type: 'logits'; id: number; logits: Float32Array; ids: number[] }
  | { type: 'tokens'; id: number; ids: number[] }
  | { type: 'done'; id: number }
  | { type: 'error'; id: number; error: SerializedEngineError }
  | { type: 'closed' };
