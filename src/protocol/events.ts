// Trainer event protocol v1: one JSON object per line on the trainer's stdout. The JSON Schema in
// schemas/events.schema.json is the source of truth, mirrored by trainer/src/bloom_peft/protocol.py.
import type { TrainingConfig } from './config';

export const PROTOCOL_VERSION = 1;

interface Base { v: 1; time: number }

export interface StartedEvent extends Base {
  type: 'started'; run_dir?: string; config: TrainingConfig; device: string; world_size: number;
  trainable_params: number; total_params: number; total_steps: number; resumed_from_step?: number;
  train_rows?: number; eval_rows?: number;
}
export interface ProgressEvent extends Base {
  type: 'progress'; step: number; total_steps: number; epoch: number; loss: number | null; lr: number;
  grad_norm?: number | null; tokens_per_s?: number | null; samples_per_s?: number | null;
  gpu_mem_bytes?: number | null; cpu_mem_bytes?: number | null; eta_s?: number | null; elapsed_s?: number;
}
export interface EvalEvent extends Base { type: 'eval'; step: number; eval_loss: number; perplexity?: number | null }
export interface CheckpointEvent extends Base { type: 'checkpoint'; step: number; path: string }
export interface LogEvent extends Base { type: 'log'; level: 'debug' | 'info' | 'warning' | 'error'; message: string }
export interface WarningEvent extends Base { type: 'warning'; code?: string; message: string }
export interface ErrorEvent extends Base {
  type: 'error'; code: string; message: string; hint?: string; file?: string; line?: number; field?: string; step?: number;
}
export interface DoneEvent extends Base {
  type: 'done'; status: 'completed' | 'stopped' | 'early_stopped'; step: number; adapter_dir: string | null;
  export_dir?: string | null;
  metrics: { train_loss?: number | null; eval_loss?: number | null; runtime_s?: number; tokens_per_s?: number | null };
}

export type TrainerEvent =
  | StartedEvent | ProgressEvent | EvalEvent | CheckpointEvent | LogEvent | WarningEvent | ErrorEvent | DoneEvent;
export type TrainerEventType = TrainerEvent['type'];
export const KNOWN_EVENT_TYPES: readonly TrainerEventType[] = ['started', 'progress', 'eval', 'checkpoint', 'log', 'warning', 'error', 'done'];

/** Control messages the host writes to the trainer's stdin, one JSON object per line. */
export type TrainerControl = { type: 'stop' };
