// What the webview keeps in vscode.setState: the form as typed, the open tab, selections. VS Code gives it
// back after hide/show and window reload; trainer events are not stored here (the host resends them).
import type { MethodName } from '../src/protocol/config';
import type { ChatTurn } from '../src/protocol/messages';
import { vscode } from './rpc';

export type ModelSource = 'embedded' | 'hub' | 'local';
export type RawValue = string | boolean;

export interface FormState {
  runName: string;
  modelSource: ModelSource;
  hubId: string;
  localModel: string;
  method: MethodName;
  /** raw (as typed) option values per method, so switching methods does not lose them */
  methodOptions: Partial<Record<MethodName, Record<string, RawValue>>>;
  dataFormat: 'instruction' | 'completion' | 'text' | 'hub';
  trainFile: string;
  evalFile: string;
  /** data.* scalars and data.columns.* (keyed "columns.instruction") */
  data: Record<string, RawValue>;
  template: Record<string, RawValue>;
  lengthMode: 'epochs' | 'max_steps';
  training: Record<string, RawValue>;
  export: Record<string, RawValue>;
}

export interface WebviewState {
  version: 1;
  tab: string;
  form: FormState;
  historySelection: string[];
  compareMethods: MethodName[];
  /** the chat as typed: sampling fields raw, finished turns, and the answer being streamed (`output`) */
  playground: { runId: string; prompt: string; maxTokens: string; temperature: string; topP: string; useTemplate: boolean; output: string; chat: ChatTurn[] };
}

export function defaultForm(): FormState {
  return {
    runName: '', modelSource: 'embedded', hubId: 'bigscience/bloom-560m', localModel: '', method: 'lora', methodOptions: {},
    dataFormat: 'instruction', trainFile: '', evalFile: '', data: {}, template: {}, lengthMode: 'epochs', training: {}, export: {},
  };
}

export function defaultState(): WebviewState {
  return {
    version: 1, tab: 'configure', form: defaultForm(), historySelection: [], compareMethods: ['lora', 'ia3', 'prefix_tuning'],
    playground: { runId: '', prompt: '', maxTokens: '48', temperature: '0.7', topP: '0.9', useTemplate: true, output: '', chat: [] },
  };
}

function load(): WebviewState {
  const saved = vscode.getState() as Partial<WebviewState> | undefined;
  const base = defaultState();
  if (!saved || saved.version !== 1) return base;
  return { ...base, ...saved, form: { ...base.form, ...saved.form }, playground: { ...base.playground, ...saved.playground } };
}

export const state: WebviewState = load();

let timer: ReturnType<typeof setTimeout> | undefined;
/** Persist soon (coalesces bursts of keystrokes). */
export function save(): void {
  clearTimeout(timer);
  timer = setTimeout(() => vscode.setState(state), 100);
}
export function saveNow(): void {
  clearTimeout(timer);
  vscode.setState(state);
}
