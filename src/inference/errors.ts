// Errors the engine raises. They cross the process boundary as plain objects (structured clone drops
// subclass identity), so every field that matters is data, and toEngineError() rebuilds the class.
import { StudioError } from '../protocol/errors';

export type EngineErrorCode =
  | 'EXPORT_NOT_FOUND' // the export folder does not exist
  | 'MANIFEST_INVALID' // manifest.json missing, unparsable or with a bad field
  | 'MANIFEST_VERSION' // format_version this engine does not understand
  | 'FILE_MISSING' // a file the manifest names is not there
  | 'MODEL_LOAD_FAILED' // onnxruntime could not load model.onnx (corrupt, truncated, wrong opset...)
  | 'MODEL_MISMATCH' // the graph's inputs/outputs/shapes disagree with the manifest
  | 'PREFIX_KV_INVALID' // prefix_kv.safetensors unreadable or with wrong tensors/shapes
  | 'TOKENIZER_INVALID' // tokenizer.json unreadable or unsupported
  | 'BAD_REQUEST' // generate() options out of range
  | 'ENGINE_CRASHED' // the engine process died (killed, out of memory, a native crash) or could not start
  | 'DISPOSED' // the engine was disposed
  | 'INFERENCE_FAILED'; // onnxruntime run() threw

export interface SerializedEngineError { code: EngineErrorCode; message: string; path?: string; field?: string; hint?: string }

export class EngineError extends StudioError {
  override readonly name = 'EngineError';
  declare readonly code: EngineErrorCode;
  readonly path?: string;
  readonly field?: string;

  constructor(code: EngineErrorCode, message: string, extra: { path?: string; field?: string; hint?: string; cause?: unknown } = {}) {
    super(code, message + (extra.hint ? ` (hint: ${extra.hint})` : ''), extra.hint, extra.cause !== undefined ? { cause: extra.cause } : undefined);
    this.path = extra.path;
    this.field = extra.field;
  }

  toJSON(): SerializedEngineError {
    const base = this.hint ? this.message.slice(0, this.message.length - ` (hint: ${this.hint})`.length) : this.message;
    return { code: this.code, message: base, path: this.path, field: this.field, hint: this.hint };
  }
}

export function serializeError(err: unknown, fallback: EngineErrorCode = 'INFERENCE_FAILED'): SerializedEngineError {
  if (err instanceof EngineError) return err.toJSON();
  return { code: fallback, message: err instanceof Error ? err.message : String(err) };
}

export function toEngineError(e: SerializedEngineError): EngineError {
  return new EngineError(e.code, e.message, { path: e.path, field: e.field, hint: e.hint });
}
