// Public surface of the completion engine (no vscode import anywhere in this folder).
export { CompletionEngine, DEFAULT_MAX_TOKENS, type EngineOptions, type GenerateOptions } from './engine';
export { EngineError, type EngineErrorCode } from './errors';
export { readManifest, resolveExportDir, SUPPORTED_FORMAT_VERSION, type ExportManifest } from './manifest';
export type { FinishReason, GenerateParams, GenerateResult, GenerateTimings, EngineInfo } from './messages';
export { formatPrompt, type PromptFields } from './template';
