// The dashboard webview <-> extension host message protocol (GitLens style): requests carry an id and get
// exactly one response; notifications flow either way without one. The webview imports these types only;
// the host runs parseWebviewMessage on every message it receives, because a webview is untrusted input.
// Paths never travel from the webview to the host as something to act on: files are chosen through host
// pickers, runs are addressed by id, and the host re-checks every path field of a config (docs/dashboard.md).
import type { TrainingConfig } from './config';
import { METHOD_NAMES, type MethodName } from './methods';
import { QUANTIZATIONS, type Quantization } from './quantization';
import type { ConfigIssue } from './config-issues';
import type { EvaluationEvent, TrainerEvent } from './events';

export const DASHBOARD_PROTOCOL_VERSION = 1;

// ---------------------------------------------------------------------------------------------------------
// View models: what the dashboard shows. The host maps its own types (src/training) onto these so the
// webview does not depend on how runs are stored.

export type RunStatus = 'running' | 'completed' | 'stopped' | 'failed' | 'interrupted';

export interface RunRow {
  id: string;
  name: string;
  method: string;
  status: RunStatus;
  /** Unix milliseconds. */
  startedAt?: number | null;
  endedAt?: number | null;
  trainablePercent?: number | null;
  trainLoss?: number | null;
  evalLoss?: number | null;
  tokensPerS?: number | null;
  step?: number | null;
  totalSteps?: number | null;
  /** The newest complete checkpoint (what Resume continues from). */
  lastCheckpointStep?: number | null;
  /** Display only: the host never takes these back from the webview. */
  dir: string;
  adapterDir?: string | null;
  exportDir?: string | null;
  /** The latest evaluation of the run's adapter (end of run or on demand): held-out answers vs the base model. */
  evaluation?: EvaluationEvent | null;
}

/** One finished exchange of the playground's chat (rendered in the run's template, EOS after each answer). */
export interface ChatTurn { user: string; assistant: string }

export interface ParamCounts { trainable: number; total: number; percent: number }

/** One dataset row as the model sees it after the template. */
export interface PreviewRow {
  /** The full text fed to the model (prompt + response). */
  text: string;
  /** The prompt part (masked from the loss when mask_prompt is on). */
  prompt?: string;
  tokens: number;
  promptTokens?: number;
  truncated?: boolean;
}

/** A path the user chose in a host picker; `path` is shown and may be put in a config as is. */
export interface Picked { path: string; label: string }

export interface CompareEntry {
  method: MethodName;
  runId?: string;
  status: 'queued' | RunStatus;
  trainablePercent?: number | null;
  trainLoss?: number | null;
  evalLoss?: number | null;
  tokensPerS?: number | null;
  runtimeS?: number | null;
  error?: string;
  evaluation?: EvaluationEvent | null;
}
export interface CompareJob { id: string; state: 'running' | 'done' | 'cancelled'; entries: CompareEntry[] }

export interface DashboardSnapshot {
  /** The run in progress (or last attached), with every event it has written so far. */
  current?: RunRow;
  currentEvents: TrainerEvent[];
  runs: RunRow[];
  compare?: CompareJob;
  /** Run id whose export serves inline completions, if any. */
  completionsRunId?: string | null;
  /** Training is refused in untrusted workspaces. */
  trusted: boolean;
  /** Host pickers already used (survive reload, so a restored form is still startable). */
  picks: Picked[];
}

export interface HostError {
  message: string; hint?: string; issues?: ConfigIssue[];
  /** the failure's kind (the trainer's error code): 'environment', 'python_not_ready'... mean the Python needs setting up */
  code?: string;
  /** where the problem is (a dataset file and line): the webview offers to open it */
  file?: string; line?: number;
}

/** The Python the trainer would use, and whether it has the trainer's packages. */
export interface EnvironmentStatus { ready: boolean; python: string; source: string }

// ---------------------------------------------------------------------------------------------------------
// Requests (webview -> host) and their results.

export interface RequestMap {
  pickModelFolder: { params: Record<string, never>; result: Picked | null };
  pickDataset: { params: { kind: 'file' | 'folder'; role: 'train' | 'eval' }; result: Picked | null };
  params: { params: { config: TrainingConfig }; result: ParamCounts };
  /** The first rows as the model sees them, the number of train/eval rows, and the data warnings. */
  preview: { params: { config: TrainingConfig; rows?: number }; result: { rows: PreviewRow[]; trainRows: number; evalRows: number; warnings: string[] } };
  start: { params: { config: TrainingConfig }; result: RunRow };
  stop: { params: Record<string, never>; result: null };
  resume: { params: { runId: string }; result: RunRow };
  listRuns: { params: Record<string, never>; result: RunRow[] };
  readEvents: { params: { runId: string }; result: TrainerEvent[] };
  useAdapter: { params: { runId: string }; result: null };
  /** ONNX export for completions (its weights: `quantize`, else the run's config), or format 'hf': a Hugging Face
   * checkpoint (merged, or adapter + base name) in RUN/hf. */
  exportRun: { params: { runId: string; format?: 'onnx' | 'hf'; quantize?: Quantization }; result: { dir: string } };
  openFolder: { params: { runId: string; which: 'run' | 'adapter' | 'export' | 'hf' }; result: null };
  /** A preset's config (schemas/presets.json) for a method; its shipped data files count as picked. Data the user
   * keeps (the tutorial's alpaca_data_zh) is left out: the form asks for it. */
  presetConfig: { params: { id: string; method?: MethodName }; result: TrainingConfig };
  /** Resolves false when the user declines the (host-side, modal) confirmation. */
  deleteRun: { params: { runId: string }; result: boolean };
  compareMethods: { params: { config: TrainingConfig; methods: MethodName[] }; result: CompareJob };
  cancelCompare: { params: Record<string, never>; result: null };
  /** Starts a streamed generation; tokens arrive as 'generation' notifications with the returned genId. */
  generate: {
    params: {
      runId: string; prompt: string; maxTokens?: number; temperature?: number; topP?: number; seed?: number;
      /** wrap the prompt in the run's training template */ template?: boolean;
      /** earlier turns of a chat, oldest first (with `template`: each rendered in the template, then EOS) */ history?: ChatTurn[];
    };
    result: { genId: string };
  };
  /** Answers the run's held-out rows with its adapter and the base model (trainer `evaluate`, seconds on the embedded model). */
  evaluateRun: { params: { runId: string }; result: EvaluationEvent };
  cancelGenerate: { params: { genId: string }; result: null };
  /** Is the trainer's Python set up? (asked when the dashboard opens, before the form is used) */
  environment: { params: Record<string, never>; result: EnvironmentStatus };
  /** Runs "Set Up Training Environment" (about 2 GB); resolves when it has finished or was cancelled. */
  setupEnvironment: { params: Record<string, never>; result: EnvironmentStatus };
  /** Opens a picked dataset file in the editor, at `line` (1-based) when given. */
  openFile: { params: { path: string; line?: number }; result: null };
  /** The field names of a picked dataset file (first row / CSV header), for the column mapping. */
  datasetFields: { params: { path: string }; result: string[] };
}
export type RequestMethod = keyof RequestMap;
export type RequestParams<M extends RequestMethod> = RequestMap[M]['params'];
export type RequestResult<M extends RequestMethod> = RequestMap[M]['result'];

export type WebviewRequest = { [M in RequestMethod]: { kind: 'request'; id: number; method: M; params: RequestParams<M> } }[RequestMethod];

/**
 * Notifications from the webview. 'ready' asks the host for a full snapshot (first load, show, reload);
 * 'draft' reports the form's config as typed (it backs "Start PEFT Training" from the palette).
 */
export type WebviewNotification = { kind: 'notify'; method: 'ready' } | { kind: 'notify'; method: 'draft'; params: { config: TrainingConfig } };

export type WebviewToHost = WebviewRequest | WebviewNotification;

// ---------------------------------------------------------------------------------------------------------
// Host -> webview.

export type HostResponse =
  | { kind: 'response'; id: number; ok: true; result: unknown }
  | { kind: 'response'; id: number; ok: false; error: HostError };

export interface HostNotificationMap {
  init: DashboardSnapshot;
  /** A trainer event of a run (live, in order). */
  event: { runId: string; event: TrainerEvent };
  /** The run being watched changed (a start, a resume, a compare step). */
  current: { run: RunRow | null; events: TrainerEvent[] };
  runs: { runs: RunRow[] };
  compare: CompareJob;
  generation: { genId: string; delta?: string; done?: boolean; error?: string };
  completions: { runId: string | null };
  /** The trainer's Python may have changed (pythonPath setting, environment set up): ask for counts and preview again. */
  environment: Record<string, never>;
}
export type HostNotification = { [M in keyof HostNotificationMap]: { kind: 'notify'; method: M; params: HostNotificationMap[M] } }[keyof HostNotificationMap];
export type HostToWebview = HostResponse | HostNotification;

// ---------------------------------------------------------------------------------------------------------
// Runtime validation of what the webview sends. Hand-written (small, no eval: it also runs under the
// webview's CSP in tests) and strict: unknown methods, extra params and wrong types are all rejected.

export type ParseResult = { ok: true; message: WebviewToHost } | { ok: false; error: string; id?: number };

const MAX_ID = 2 ** 31;
const MAX_STRING = 100_000;
const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;
const GEN_ID = /^[A-Za-z0-9_-]{1,64}$/;

type Check = (v: unknown) => string | undefined;
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (re?: RegExp, max = MAX_STRING): Check => v =>
  typeof v !== 'string' ? 'must be a string' : v.length > max ? `is longer than ${max} characters` : re && !re.test(v) ? `has an invalid format` : undefined;
const oneOf = <T>(...values: T[]): Check => v => (values.includes(v as T) ? undefined : `must be one of ${values.map(x => JSON.stringify(x)).join(', ')}`);
const int = (min: number, max: number): Check => v => (Number.isInteger(v) && (v as number) >= min && (v as number) <= max ? undefined : `must be an integer in [${min}, ${max}]`);
const num = (min: number, max: number): Check => v => (typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max ? undefined : `must be a number in [${min}, ${max}]`);
const bool: Check = v => (typeof v === 'boolean' ? undefined : 'must be true or false');
const object: Check = v => (isObj(v) ? undefined : 'must be an object');
const methodList: Check = v => {
  if (!Array.isArray(v) || v.length < 1 || v.length > METHOD_NAMES.length) return `must be a list of 1 to ${METHOD_NAMES.length} methods`;
  if (new Set(v).size !== v.length) return 'must not repeat a method';
  return v.map(oneOf(...METHOD_NAMES)).find(Boolean);
};

const MAX_TURNS = 50;
const chatHistory: Check = v => {
  if (!Array.isArray(v) || v.length > MAX_TURNS) return `must be a list of at most ${MAX_TURNS} turns`;
  for (const [i, turn] of v.entries()) {
    if (!isObj(turn) || Object.keys(turn).length !== 2) return `turn ${i + 1} must be { user, assistant }`;
    const problem = str(undefined, 20_000)(turn.user) ?? str(undefined, 20_000)(turn.assistant);
    if (problem) return `turn ${i + 1}: ${problem}`;
  }
  return undefined;
};

interface ParamSpec { required: Record<string, Check>; optional?: Record<string, Check> }
const NONE: ParamSpec = { required: {} };
const SPECS: { [M in RequestMethod]: ParamSpec } = {
  pickModelFolder: NONE,
  pickDataset: { required: { kind: oneOf('file', 'folder'), role: oneOf('train', 'eval') } },
  params: { required: { config: object } },
  preview: { required: { config: object }, optional: { rows: int(1, 20) } },
  start: { required: { config: object } },
  stop: NONE,
  resume: { required: { runId: str(RUN_ID) } },
  listRuns: NONE,
  readEvents: { required: { runId: str(RUN_ID) } },
  useAdapter: { required: { runId: str(RUN_ID) } },
  exportRun: { required: { runId: str(RUN_ID) }, optional: { format: oneOf('onnx', 'hf'), quantize: oneOf(...QUANTIZATIONS) } },
  openFolder: { required: { runId: str(RUN_ID), which: oneOf('run', 'adapter', 'export', 'hf') } },
  presetConfig: { required: { id: str(undefined, 100) }, optional: { method: oneOf(...METHOD_NAMES) } },
  deleteRun: { required: { runId: str(RUN_ID) } },
  compareMethods: { required: { config: object, methods: methodList } },
  cancelCompare: NONE,
  generate: {
    required: { runId: str(RUN_ID), prompt: str(undefined, 20_000) },
    optional: { maxTokens: int(1, 512), temperature: num(0, 2), topP: num(0.01, 1), seed: int(0, 2 ** 31 - 1), template: bool, history: chatHistory },
  },
  evaluateRun: { required: { runId: str(RUN_ID) } },
  cancelGenerate: { required: { genId: str(GEN_ID) } },
  environment: NONE,
  setupEnvironment: NONE,
  openFile: { required: { path: str(undefined, 4096) }, optional: { line: int(1, 2 ** 31 - 1) } },
  datasetFields: { required: { path: str(undefined, 4096) } },
};

export const REQUEST_METHODS = Object.keys(SPECS) as RequestMethod[];

/** Validates one message from the webview. On failure `id` is set when a response can still be addressed. */
export function parseWebviewMessage(raw: unknown): ParseResult {
  if (!isObj(raw)) return { ok: false, error: 'message must be an object' };
  if (raw.kind === 'notify') {
    const extra = Object.keys(raw).filter(k => k !== 'kind' && k !== 'method' && k !== 'params');
    if (extra.length) return { ok: false, error: `unexpected field "${extra[0]}"` };
    if (raw.method === 'ready') return { ok: true, message: { kind: 'notify', method: 'ready' } };
    if (raw.method === 'draft') {
      const params = raw.params;
      if (!isObj(params) || !isObj(params.config) || Object.keys(params).length !== 1) return { ok: false, error: 'draft: params must be { config: object }' };
      return { ok: true, message: { kind: 'notify', method: 'draft', params: { config: params.config as unknown as TrainingConfig } } };
    }
    return { ok: false, error: `unknown notification ${JSON.stringify(String(raw.method)).slice(0, 80)}` };
  }
  if (raw.kind !== 'request') return { ok: false, error: 'kind must be "request" or "notify"' };
  if (int(1, MAX_ID)(raw.id)) return { ok: false, error: `id ${int(1, MAX_ID)(raw.id)}` };
  const id = raw.id as number;
  const extraTop = Object.keys(raw).filter(k => !['kind', 'id', 'method', 'params'].includes(k));
  if (extraTop.length) return { ok: false, id, error: `unexpected field "${extraTop[0]}"` };
  const method = raw.method;
  if (typeof method !== 'string' || !Object.hasOwn(SPECS, method)) {
    return { ok: false, id, error: `unknown request ${JSON.stringify(String(method)).slice(0, 80)}` };
  }
  const spec = SPECS[method as RequestMethod];
  const params = raw.params ?? {};
  if (!isObj(params)) return { ok: false, id, error: `${method}: params must be an object` };
  for (const [key, check] of Object.entries(spec.required)) {
    if (!(key in params)) return { ok: false, id, error: `${method}: missing "${key}"` };
    const problem = check(params[key]);
    if (problem) return { ok: false, id, error: `${method}: "${key}" ${problem}` };
  }
  for (const [key, value] of Object.entries(params)) {
    if (key in spec.required) continue;
    const check = spec.optional?.[key];
    if (!check) return { ok: false, id, error: `${method}: unexpected parameter "${key}"` };
    if (value === undefined) continue;
    const problem = check(value);
    if (problem) return { ok: false, id, error: `${method}: "${key}" ${problem}` };
  }
  return { ok: true, message: { kind: 'request', id, method, params } as WebviewToHost };
}

/** Light shape check for what the host sends (the webview ignores anything else). */
export function isHostMessage(raw: unknown): raw is HostToWebview {
  if (!isObj(raw)) return false;
  if (raw.kind === 'response') return Number.isInteger(raw.id) && typeof raw.ok === 'boolean';
  return raw.kind === 'notify' && typeof raw.method === 'string' && isObj(raw.params);
}
