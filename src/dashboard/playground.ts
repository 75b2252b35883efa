// The playground's engine: the completion service (src/completion/service.ts) adapted to PlaygroundEngine.
// No vscode import, so tests drive it with a real CompletionService.
import type { ChatTurn } from '../protocol/messages';
import type { GenerateOptions, GenerateResult } from '../completion/types';
import type { PlaygroundEngine } from './ports';

/** What the dashboard uses of the completion service (src/completion/service.ts fits it structurally). */
export interface CompletionsLike {
  generate(prompt: string, adapterRunDir?: string, onToken?: (text: string) => void, signal?: AbortSignal,
    opts?: Partial<Pick<GenerateOptions, 'maxTokens' | 'temperature' | 'topP' | 'seed'>> & { instruction?: boolean; history?: readonly ChatTurn[] }): Promise<GenerateResult>;
  readonly activeAdapter?: { runId?: string } | undefined;
  onDidChange?(listener: (status: { adapter?: { runId?: string } }) => void): { dispose(): void };
}

export function playgroundEngine(completions: CompletionsLike | undefined): PlaygroundEngine | undefined {
  if (!completions) return undefined;
  return {
    generate: (exportDir, prompt, o) => completions.generate(prompt, exportDir, o.onToken, o.signal, {
      maxTokens: o.maxTokens, temperature: o.temperature, topP: o.topP, seed: o.seed, instruction: o.template, history: o.history,
    }),
  };
}
