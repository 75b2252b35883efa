// The narrow contracts the completion pipeline needs. Nothing here imports vscode, so the pipeline runs under plain
// node (unit tests, CLI, bench) exactly as it does in the extension host.
import type { GenerateOptions as EngineGenerateOptions, GenerateResult as EngineGenerateResult } from '../inference';
import type { PromptTemplate } from '../protocol/template';

/** Options for one generation: the engine's (src/inference), with the length and the temperature always set. */
export type GenerateOptions = EngineGenerateOptions & { maxTokens: number; temperature: number };

export type { FinishReason } from '../inference';

/** The engine's result; a fake generator at the test edge may leave out the token ids and the timings. */
export type GenerateResult = Pick<EngineGenerateResult, 'text' | 'finishReason'> & Partial<Pick<EngineGenerateResult, 'tokens' | 'timings'>>;

/** What the pipeline generates with: the ONNX engine, adapted (engine.ts), or a fake at the test edge. */
export interface Generator {
  generate(prompt: string, opts: GenerateOptions): Promise<GenerateResult>;
}

/** The adapter's training template, as the export manifest records it (one definition: src/protocol/template.ts). */
export type { PromptTemplate };

/** What the pipeline needs to know about the loaded export (a subset of manifest.json). */
export interface AdapterInfo {
  /** Stable identity of the loaded export (its directory); part of every cache key. */
  key: string;
  template: PromptTemplate | null;
  instructionTuned: boolean;
  /** Token counter of the adapter's tokenizer, when available; otherwise the prompt builder estimates. */
  countTokens?: (text: string) => number;
}

/** The user's completion settings (bloomPeft.completions.*), already read from wherever they live. */
export interface CompletionSettings {
  enabled: boolean;
  maxTokens: number;
  mode: 'singleLine' | 'multiLine';
  debounceMs: number;
  /** Keystroke → ghost text budget: no model step is started that would show the text after it; the text ends at
   * its last complete word (0 = no limit). */
  latencyBudgetMs: number;
  temperature: number;
  /** language id -> on/off; "*" is the default for the rest. */
  languages: Record<string, boolean>;
}

export const DEFAULT_SETTINGS: CompletionSettings = {
  enabled: true, maxTokens: 48, mode: 'singleLine', debounceMs: 150, latencyBudgetMs: 300, temperature: 0,
  languages: { '*': true, markdown: true, plaintext: true },
};

/** One completion request, built from the editor (provider.ts) or by a headless caller (bench, e2e, CLI). */
export interface CompletionRequest {
  /** Document identity (uri); part of the cache scope. */
  uri: string;
  languageId: string;
  /** Text before the cursor. May be a window (the tail) of it; `offset` says where the cursor really is. */
  prefix: string;
  /** Text after the cursor (or its head). */
  suffix: string;
  /** Absolute cursor offset in the document. Defaults to prefix.length. */
  offset?: number;
  /** Whole document length in characters. Defaults to prefix.length + suffix.length. */
  documentLength?: number;
  /** 'invoke' = the user asked explicitly (skips the debounce). */
  trigger?: 'automatic' | 'invoke';
  /** The suggest widget's selected item, while the widget is open (see selection.ts). */
  selected?: SelectedItem;
  /** When the document change this request answers happened (the keystroke; wallClock ms, src/inference/stop.ts):
   * the debounce and the latency budget count from it. Absent: from the call. */
  changedAt?: number;
}

/** The suggest widget's selected item: it would replace `replaceBefore` characters before the cursor and
 * `replaceAfter` after it (on the cursor's line) with `text`. */
export interface SelectedItem {
  text: string;
  replaceBefore: number;
  replaceAfter: number;
}

/** A completion ready to show at the cursor. */
export interface Completion {
  /** Text to insert at the cursor (or over the selected item's range, see replaceBefore/replaceAfter). */
  insertText: string;
  /** Characters before and after the cursor that insertText replaces: the suggest widget's selected item, which
   * insertText starts with. Absent: inserted at the cursor. */
  replaceBefore?: number;
  replaceAfter?: number;
  /** True when it came from the cache (no generation). */
  cached: boolean;
  /** Milliseconds from the call to the result (debounce included), and the engine's share. */
  latencyMs: number;
  engineMs: number;
  /** The prompt sent to the engine (diagnostics, bench). */
  prompt: string;
  /** The engine's own timings for this generation (absent for cache hits). */
  timings?: GenerateResult['timings'];
}

/** Why a request produced nothing; kept on the pipeline for diagnostics, tests and the bench. */
export type SkipReason =
  | 'disabled' | 'language' | 'large-file' | 'mid-word' | 'selection' | 'no-adapter' | 'no-prompt' | 'answered'
  | 'debounced' | 'aborted' | 'blank' | 'duplicate' | 'repeat' | 'error';
