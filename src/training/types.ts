// Public types of the training core. The dashboard, the completions and the CLI build against these;
// nothing here imports vscode.
import type { ConfigIssue, EvaluationEvent, MethodName, Quantization, TrainerEvent, TrainingConfig } from '../protocol';
import type { CheckReport } from '../protocol/generated/check-report';
import { StudioError } from '../protocol/errors';
import type { RunStatus } from '../protocol/messages';
import type { ParamsAnswer } from '../protocol/generated/params-answer';
import type { PreviewAnswerRow } from '../protocol/generated/preview-answer';

/** Anything with a dispose(); structurally compatible with vscode.Disposable. */
export interface Disposable { dispose(): void }

/** A run as listed from disk (one definition: src/protocol/messages.ts). `running`: a trainer (ours or another
 * window's) is alive for it. */
export type { RunStatus };

export interface RunSummary {
  id: string;
  dir: string;
  name?: string;
  method?: MethodName;
  baseModel?: string;
  status: RunStatus;
  /** ms since epoch */
  startedAt?: number;
  endedAt?: number;
  trainableParams?: number;
  totalParams?: number;
  /** trainable / total * 100 */
  trainablePercent?: number;
  step: number;
  totalSteps?: number;
  finalTrainLoss?: number | null;
  finalEvalLoss?: number | null;
  /** last train loss seen (running runs) */
  lastLoss?: number | null;
  tokensPerS?: number | null;
  /** the newest complete checkpoint step, if any (what resume continues from) */
  lastCheckpointStep?: number;
  adapterDir?: string;
  exportDir?: string;
  /** message of the last error event (trainer- or host-written) */
  error?: { code: string; message: string; hint?: string };
  /** the latest evaluation of the adapter at `step` (end of run or on demand), if any */
  evaluation?: EvaluationEvent;
  /** true when a trainer process for it lives in this process (false: another window/CLI owns it) */
  owned: boolean;
  resumable: boolean;
}

/** The run this service is driving (or following) right now. */
export interface RunInfo {
  id: string;
  dir: string;
  config: TrainingConfig;
  pid: number;
  /** 'stopping': a graceful stop was requested */
  state: 'running' | 'stopping';
  /** false: the trainer belongs to another window / CLI; we only tail its events.jsonl */
  owned: boolean;
  resumed: boolean;
  startedAt: number;
  /** latest progress, for the status bar */
  step: number;
  totalSteps?: number;
  loss?: number | null;
  etaS?: number | null;
  tokensPerS?: number | null;
}

/** How a trainer process ended. */
export interface RunEnd {
  runId: string;
  dir: string;
  outcome: Exclude<RunStatus, 'running'>;
  exitCode: number | null;
  signal: string | null;
  /** the trainer's own error event, if it sent one */
  error?: { code: string; message: string; hint?: string };
  /** last lines of the trainer's stderr */
  stderrTail: string;
  /** one line a notification can show: the error event's message (+hint) or the exit status and stderr tail */
  message: string;
  /** the stop deadline passed and the process tree was killed */
  killedAfterDeadline: boolean;
  adapterDir?: string | null;
  exportDir?: string | null;
}

/** `params`: the trainer's counts (schemas/params-answer.schema.json) that the dashboard shows. */
export type ParamsResult = Pick<ParamsAnswer, 'trainable' | 'total' | 'percent'>;

/** `preview`: the first rows as the trainer answers them (schemas/preview-answer.schema.json), the split's sizes,
 * and the data warnings (skipped rows, a language the model lacks). */
export interface PreviewResult { rows: PreviewAnswerRow[]; trainRows: number; evalRows: number; warnings: string[] }

/** `python -m bloom_peft check` output (schemas/check-report.schema.json); `problems` is what the host shows. */
export type { CheckReport };

/** A user-fixable failure of a service call (bad config, no Python, busy...). */
export class TrainingError extends StudioError {
  override readonly name = 'TrainingError';
  constructor(
    code: string,
    message: string,
    hint?: string,
    readonly issues: ConfigIssue[] = [],
    /** the file (and line) the problem is in, e.g. a dataset row */
    readonly location?: { file: string; line?: number },
  ) {
    super(code, message, hint);
  }
}

/** Logging sink: vscode.LogOutputChannel fits it, and so does a console adapter. */
export interface Logger {
  trace(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** raw trainer stderr text (already line-split) */
  append?(text: string): void;
}

export type EventListener = (runId: string, event: TrainerEvent) => void;

/** What the dashboard, the completions and the CLI use. */
export interface TrainingServiceApi {
  start(config: TrainingConfig, options?: { name?: string }): Promise<RunInfo>;
  stop(runId?: string): Promise<void>;
  resume(runId: string): Promise<RunInfo>;
  current(): RunInfo | undefined;
  onEvent(listener: EventListener): Disposable;
  onRunsChanged(listener: () => void): Disposable;
  onRunEnded(listener: (end: RunEnd) => void): Disposable;
  listRuns(): Promise<RunSummary[]>;
  readEvents(runId: string): Promise<TrainerEvent[]>;
  deleteRun(runId: string): Promise<void>;
  /** ONNX export (RUN/export; weights as `quantize`, else as the run's config), or with `hf` a Hugging Face
   * checkpoint (RUN/hf); resolves to the folder. */
  exportRun(runId: string, opts?: { hf?: boolean; quantize?: Quantization }): Promise<string>;
  /** Answers the run's held-out rows with its adapter and the base model (trainer `evaluate`); the event is appended to events.jsonl. */
  evaluateRun(runId: string, opts?: { signal?: AbortSignal; onLog?: (line: string) => void }): Promise<EvaluationEvent>;
  params(config: TrainingConfig): Promise<ParamsResult>;
  preview(config: TrainingConfig, rows?: number): Promise<PreviewResult>;
  check(): Promise<CheckReport>;
}
