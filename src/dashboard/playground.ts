// The playground: generation with any run's export for the dashboard, streamed. With `template`, the prompt is
// wrapped in the adapter's training template after the chat's earlier turns (chat.ts). It generates with the
// completion engine when that one already serves the export, else with an engine of its own (one worker, recycled
// for another export). No vscode import, so tests drive it with a real engine.
import fs from 'node:fs';
import path from 'node:path';
import { EngineHost, type EngineLike, type EngineLoader } from '../completion/engineHost';
import type { GenerateResult } from '../completion/types';
import { eosTokenText, renderChat } from './chat';
import type { PlaygroundEngine } from './ports';

/** What the dashboard uses of the completion service (src/completion/service.ts fits it structurally). */
export interface CompletionsLike {
  /** The completion engine when it is ready and serves this export. */
  servingEngine?(exportDir: string): EngineLike | undefined;
  readonly activeAdapter?: { runId?: string } | undefined;
  onDidChange?(listener: (status: { adapter?: { runId?: string } }) => void): { dispose(): void };
}

export class Playground implements PlaygroundEngine {
  private readonly own: EngineHost;

  constructor(loadEngine: EngineLoader, private readonly completions?: CompletionsLike) {
    this.own = new EngineHost(loadEngine);
  }

  async generate(exportDir: string, prompt: string, opts: Parameters<PlaygroundEngine['generate']>[2]): Promise<GenerateResult> {
    const engine = this.completions?.servingEngine?.(exportDir) ?? (await this.own.load(exportDir))!.generator;
    const { template: wrap, history = [], ...gen } = opts;
    const template = engine.manifest.template;
    const eos = history.length ? eosTokenText(readJson(path.join(exportDir, 'tokenizer.json')), engine.manifest.eos_token_id) : '';
    return engine.generate(wrap && template ? renderChat(template, history, prompt, eos) : prompt, gen);
  }

  dispose(): Promise<void> {
    return this.own.dispose();
  }
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}
