// The pipeline without VS Code, on a real export: for the CLI, the bench (keystroke → ghost text latency) and
// tests. Same service, same pipeline, same engine as the inline provider.
import type { EngineOptions } from '../inference';
import { engineLoader } from './engine';
import { CompletionService, type ServiceSettings } from './service';
import { DEFAULT_SETTINGS, type Completion } from './types';

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
  dispose(): Promise<void>;
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
    complete: (text, o = {}) => {
      const offset = o.offset ?? text.length;
      return service.complete(
        { uri: 'headless://document', languageId: o.languageId ?? 'plaintext', prefix: text.slice(0, offset), suffix: text.slice(offset), trigger: o.invoke ? 'invoke' : 'automatic', changedAt: o.changedAt },
        o.signal,
      );
    },
    dispose: () => service.dispose(),
  };
}
