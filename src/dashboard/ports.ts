// What the dashboard core needs from its surroundings. provider.ts implements DashboardHost with the VS Code
// API; tests implement it at the edge (pickers, dialogs). Nothing here imports vscode.
import type { GenerateOptions, GenerateResult } from '../completion/types';
import type { ChatTurn } from '../protocol/messages';
import type { EnvironmentStatus } from '../protocol/messages';

export interface DashboardHost {
  /** Native folder picker; undefined when cancelled. */
  pickFolder(title: string): Promise<string | undefined>;
  /** Native file picker; undefined when cancelled. */
  pickFile(title: string, filters: Record<string, string[]>): Promise<string | undefined>;
  /** Modal confirmation owned by the host (the webview cannot fake a "yes"). */
  confirm(message: string, detail: string, action: string): Promise<boolean>;
  /** Reveal a folder in the OS file manager. */
  revealInOS(path: string): Promise<void>;
  /** Select a run's export for inline completions (the bloomPeft.useAdapter command). */
  useAdapter(runId: string, runDir: string): Promise<void>;
  /** Run id currently serving completions, if known. */
  completionsRunId(): string | null;
  /** Workspace trust: training is refused when false. */
  isTrusted(): boolean;
  /** The Python the trainer would use and whether it has the trainer's packages. */
  environment(): Promise<EnvironmentStatus>;
  /** Runs the "Set Up Training Environment" command; resolves when it has finished (or was cancelled). */
  setupEnvironment(): Promise<void>;
  /** Opens a file in an editor, at a 1-based line when given. */
  openFile(path: string, line?: number): Promise<void>;
  /** Small persistent store (workspaceState): picks and the watched run survive a window reload. */
  state: { get<T>(key: string): T | undefined; update(key: string, value: unknown): PromiseLike<void> };
}

/** Generation for the playground: one ONNX export, streamed. Adapted from the completion/inference services. */
export interface PlaygroundEngine {
  /** `template`: wrap the prompt in the template recorded in the export's manifest, after the chat's `history`. */
  generate(exportDir: string, prompt: string, opts: GenerateOptions & { template?: boolean; history?: readonly ChatTurn[] }): Promise<GenerateResult>;
}
