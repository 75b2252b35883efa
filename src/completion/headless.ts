// The pipeline without VS Code, on a real export: for the CLI, the bench (keystroke → ghost text latency) and
// tests. Same service, same pipeline, same engine as the inline provider.
import type { EngineOptions } from '../inference';
import { engineLoader } from './engine';
import { CompletionService, type ServiceSettings } from './service';
import { DEFAULT_SETTINGS, type Completion, type CompletionRequest } from './types';

export interface HeadlessCompletions {
  service: CompletionService;
  /** The live settings: change a field, then `service.settingsChanged()` (cached completions are dropped). */
  settings: ServiceSettings;
  /**
   * Completes `text` at `offset` (default: the end) as if the user had just typed there, debounce included unless
   * `invoke` is set. languageId defaults to plaintext. `changedAt`: when the keystroke happened (wallClock ms,
   * src/inference/stop.ts; default now), as the editor passes it.
   */
  complete(text: string, opts?: { offset?: number; languageId?: string; invoke?: boolean; signal?: AbortSignal; changedAt?: number }): Promise<Completion | undefined>;
  /** The document became `text` (a keystroke; the cursor at `offset`, default the end): what the editor does on a
   * change, before VS Code asks for a completion ~50 ms later (the text is prefilled at once). */
  changed(text: string, opts?: { offset?: number; languageId?: string; changedAt?: number }): void;
  dispose(): Promise<void>;
}

function request(text: string, offset = text.length, languageId = 'plaintext', changedAt?: number): CompletionRequest {
  return { uri: 'headless://document', languageId, prefix: text.slice(0, offset), suffix: text.slice(offset), trigger: 'automatic', changedAt };
}

/** Loads `exportDir` (an export folder or a run folder) and returns a ready pipeline; throws if it cannot load. */
export async function createHeadlessCompletions(exportDir: string, settings: Partial<ServiceSettings> = {}, engine: EngineOptions = {}): Promise<HeadlessCompletions> {
  const s: ServiceSettings = { ...DEFAULT_SETTINGS, ...settings, adapter: exportDir };
  const service = new CompletionService({ loadEngine: engineLoader(engine), settings: () => s });
  let problem: string | undefined;
  service.onProblem(p => (problem = `${p.message}${p.hint ? ` (${p.hint})` : ''}`));
  await service.useAdapter(exportDir);
  if (service.status().state !== 'ready') {
    await service.dispose();
    throw new Error(problem ?? `cannot load ${exportDir}`);
  }
  return {
    service,
    settings: s,
    complete: (text, o = {}) => service.complete({ ...request(text, o.offset, o.languageId, o.changedAt), trigger: o.invoke ? 'invoke' : 'automatic' }, o.signal),
    changed: (text, o = {}) => service.prefillAtChange(request(text, o.offset, o.languageId, o.changedAt)),
    dispose: () => service.dispose(),
  };
}
