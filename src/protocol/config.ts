// The training config contract. The JSON Schema in schemas/ is the single source of truth; these types mirror it
// and test/unit/protocol.test.ts checks both against the shared vectors in schemas/vectors/.
import Ajv from 'ajv';
import { issuesFromAjvErrors, type ConfigIssue } from './config-issues';
import schema from '../../schemas/training-config.schema.json';

export const METHOD_NAMES = ['full', 'bitfit', 'prompt_tuning', 'p_tuning', 'prefix_tuning', 'lora', 'ia3'] as const;
export type MethodName = (typeof METHOD_NAMES)[number];

export type MethodConfig =
  | { name: 'full' }
  | { name: 'bitfit' }
  | { name: 'prompt_tuning'; num_virtual_tokens?: number; init?: 'random' | 'text'; init_text?: string }
  | { name: 'p_tuning'; num_virtual_tokens?: number; encoder_type?: 'MLP' | 'LSTM'; encoder_hidden_size?: number; encoder_num_layers?: number; encoder_dropout?: number }
  | { name: 'prefix_tuning'; num_virtual_tokens?: number; prefix_projection?: boolean; encoder_hidden_size?: number }
  | { name: 'lora'; r?: number; alpha?: number; dropout?: number; target_modules?: string[] }
  | { name: 'ia3'; target_modules?: string[]; feedforward_modules?: string[] };

export interface DataConfig {
  format: 'instruction' | 'completion' | 'text' | 'hub';
  train_file?: string;
  eval_file?: string;
  eval_split?: number;
  hub_id?: string;
  hub_split?: string;
  columns?: Partial<Record<'instruction' | 'input' | 'output' | 'prompt' | 'completion', string>>;
  file_extensions?: string[];
  block_size?: number;
  max_samples?: number;
}

export interface TemplateConfig { prompt?: string; response_prefix?: string; add_eos?: boolean; mask_prompt?: boolean }

export interface TrainingOptions {
  epochs?: number; max_steps?: number; batch_size?: number; grad_accum?: number; learning_rate?: number;
  scheduler?: 'linear' | 'cosine' | 'constant' | 'constant_with_warmup'; warmup_ratio?: number; weight_decay?: number;
  max_grad_norm?: number; max_length?: number; eval_every?: number; save_every?: number; keep_checkpoints?: number;
  log_every?: number; seed?: number; precision?: 'auto' | 'fp32' | 'bf16' | 'fp16'; device?: 'auto' | 'cuda' | 'mps' | 'cpu';
  num_gpus?: number; group_by_length?: boolean; gradient_checkpointing?: boolean; early_stopping_patience?: number; num_workers?: number;
}

export interface ExportOptions { onnx?: boolean; quantize?: 'none' | 'int8'; fp16?: boolean }

export interface TrainingConfig {
  version?: 1;
  run_name?: string;
  model: { name_or_path: string; revision?: string; config_only?: boolean };
  method: MethodConfig;
  data: DataConfig;
  template?: TemplateConfig;
  training?: TrainingOptions;
  export?: ExportOptions;
}

export const TRAINING_CONFIG_SCHEMA = schema;

export type { ConfigIssue } from './config-issues';

const ajv = new Ajv({ allErrors: true, strict: false });
const validate = ajv.compile(schema);

/** Validates against the shared schema; returns [] when valid. Messages name the field. */
export function validateConfig(config: unknown): ConfigIssue[] {
  if (validate(config)) return [];
  return issuesFromAjvErrors(validate.errors);
}
