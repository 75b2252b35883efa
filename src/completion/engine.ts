// The real generator: the ONNX engine of src/inference (a worker thread per export). CompletionEngine already has
// the shape the service needs (EngineLike); this file is the one place that binds the two.
import { CompletionEngine, type EngineOptions } from '../inference';
import type { EngineLike, EngineLoader } from './engineHost';

export function engineLoader(opts: EngineOptions = {}): EngineLoader {
  return async (exportDir: string): Promise<EngineLike> => CompletionEngine.load(exportDir, opts);
}
