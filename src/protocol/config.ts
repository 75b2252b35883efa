// The training config contract. The JSON Schema in schemas/ is the single source of truth; the types are generated
// from it (scripts/gen-types.mjs) and test/unit/protocol.test.ts checks the validator against schemas/vectors/.
import Ajv from 'ajv';
import { issuesFromAjvErrors, type ConfigIssue } from './config-issues';
import schema from '../../schemas/training-config.schema.json';
import type { TrainingConfig } from './generated/training-config';

export { METHOD_NAMES, type MethodName } from './methods';
export { QUANTIZATIONS, QUANTIZATION_LABELS, type Quantization } from './quantization';

export type {
  TrainingConfig, MethodConfig, ModelConfig, DataConfig, TemplateConfig, TrainingOptions, ExportOptions,
  FullMethod, BitfitMethod, PromptTuningMethod, PTuningMethod, PrefixTuningMethod, LoraMethod, Ia3Method,
} from './generated/training-config';

export const TRAINING_CONFIG_SCHEMA = schema;

export type { ConfigIssue } from './config-issues';

const ajv = new Ajv({ allErrors: true, strict: false });
const validate = ajv.compile(schema);

/** Validates against the shared schema; returns [] when valid. Messages name the field. */
export function validateConfig(config: unknown): ConfigIssue[] {
  if (validate(config)) return [];
  return issuesFromAjvErrors(validate.errors);
}

/**
 * Parameter counts depend on the model and the method only: a form without a dataset yet still gets them. The
 * config is counted with this data block in place of its own (the trainer reads no data for a count).
 */
export function forParamsCount<C extends { data?: unknown }>(config: C): C & { data: TrainingConfig['data'] } {
  return { ...config, data: { format: 'text', train_file: '.' } };
}
