// The form is driven by the shared schema: method options, hyperparameters and data options are rendered
// from schemas/training-config.schema.json (labels, defaults as placeholders, descriptions as hints, enums as
// dropdowns), and raw typed values are converted to the schema's types. A new schema option appears in the
// dashboard without webview changes.
import schemaJson from '../schemas/training-config.schema.json';
import type { MethodName, TrainingConfig } from '../src/protocol/config';
import type { FormState, RawValue } from './store';

export interface PropSpec {
  type?: string | string[];
  enum?: unknown[];
  default?: unknown;
  description?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  items?: PropSpec;
}
interface ObjectSpec { description?: string; properties: Record<string, PropSpec> }

const schema = schemaJson as unknown as {
  properties: Record<'training' | 'data' | 'template' | 'export' | 'model', ObjectSpec & { properties: Record<string, PropSpec & Partial<ObjectSpec>> }>;
  definitions: Record<string, ObjectSpec>;
};

/** Each method's label, in the order the form lists them (the common ones first). Typed by the schema's method
 *  enum (generated MethodName): a method the schema adds or drops fails to compile here until it is labelled. */
export const METHOD_LABELS: Record<MethodName, string> = {
  lora: 'LoRA', ia3: 'IA³', prefix_tuning: 'Prefix tuning', p_tuning: 'P-tuning', prompt_tuning: 'Prompt tuning',
  bitfit: 'BitFit', full: 'Full fine-tuning',
};
/** The schema's methods in the form's order. */
export const METHODS = Object.keys(METHOD_LABELS) as MethodName[];

export function methodSpec(name: MethodName): ObjectSpec {
  const def = schema.definitions[`method_${name}`];
  const properties = { ...def.properties };
  delete properties.name;
  return { description: def.description, properties };
}

export const trainingProps = (): Record<string, PropSpec> => schema.properties.training.properties;
export const dataProps = (): Record<string, PropSpec> => schema.properties.data.properties;
export const columnProps = (): Record<string, PropSpec> => (schema.properties.data.properties.columns as unknown as ObjectSpec).properties;
export const templateProps = (): Record<string, PropSpec> => schema.properties.template.properties;
export const exportProps = (): Record<string, PropSpec> => schema.properties.export.properties;

const LABELS: Record<string, string> = {
  num_virtual_tokens: 'Virtual tokens', init: 'Initialisation', init_text: 'Initialisation text', encoder_type: 'Prompt encoder',
  encoder_hidden_size: 'Encoder hidden size', encoder_num_layers: 'Encoder layers', encoder_dropout: 'Encoder dropout',
  prefix_projection: 'Reparameterise through a projection MLP', r: 'Rank (r)', alpha: 'Alpha', dropout: 'Dropout',
  target_modules: 'Target modules', feedforward_modules: 'Feed-forward modules', epochs: 'Epochs', max_steps: 'Steps',
  batch_size: 'Batch size', grad_accum: 'Gradient accumulation', learning_rate: 'Learning rate', scheduler: 'LR scheduler',
  warmup_ratio: 'Warmup ratio', weight_decay: 'Weight decay', max_grad_norm: 'Max grad norm', max_length: 'Max length (tokens)',
  eval_every: 'Evaluate every N steps', save_every: 'Checkpoint every N steps', keep_checkpoints: 'Checkpoints kept',
  log_every: 'Log every N steps', seed: 'Seed', precision: 'Precision', device: 'Device', num_gpus: 'Number of GPUs',
  group_by_length: 'Group rows by length', gradient_checkpointing: 'Gradient checkpointing',
  early_stopping_patience: 'Early stopping patience (evals)', num_workers: 'DataLoader workers', eval_split: 'Eval split (fraction)',
  hub_id: 'Hub dataset id', hub_split: 'Hub split', file_extensions: 'File extensions', block_size: 'Block size (tokens)',
  max_samples: 'Max training rows', prompt: 'Prompt template', response_prefix: 'Response prefix', add_eos: 'Append EOS token',
  mask_prompt: 'Mask the prompt from the loss', onnx: 'Export ONNX at the end (for completions)', quantize: 'Quantize export',
  fp16: 'Export in fp16', instruction: 'Instruction column', input: 'Input column', output: 'Output column',
  completion: 'Completion column',
};
export function labelFor(key: string): string {
  return LABELS[key] ?? key.replace(/_/g, ' ').replace(/^./, c => c.toUpperCase());
}

export function kindOf(spec: PropSpec): 'boolean' | 'enum' | 'integer' | 'number' | 'array' | 'string' {
  if (spec.enum) return 'enum';
  const t = Array.isArray(spec.type) ? spec.type.find(x => x !== 'null') : spec.type;
  return (t === 'boolean' || t === 'integer' || t === 'number' || t === 'array') ? t : 'string';
}

const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

/**
 * Raw form value -> config value. Empty means "use the default" (omitted). A number field holding text
 * stays a string, so the schema reports it ("must be number") next to the field.
 */
export function convert(raw: RawValue | undefined, spec: PropSpec, key?: string): unknown {
  if (raw === undefined) return undefined;
  if (typeof raw === 'boolean') return raw;
  const kind = kindOf(spec);
  if (kind === 'string' && (key === 'prompt' || key === 'response_prefix')) return raw === '' ? undefined : raw; // templates keep their whitespace
  const text = raw.trim();
  if (text === '') return undefined;
  if (kind === 'integer' || kind === 'number') return NUMBER.test(text) ? Number(text) : text;
  if (kind === 'array') return text.split(',').map(s => s.trim()).filter(Boolean);
  return text;
}

function convertAll(raw: Record<string, RawValue> | undefined, specs: Record<string, PropSpec>, skip: (k: string) => boolean = () => false): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw ?? {})) {
    if (!(k in specs) || skip(k)) continue;
    const value = convert(v, specs[k], k);
    if (value !== undefined) out[k] = value;
  }
  return out;
}

export const FORMAT_COLUMNS: Record<FormState['dataFormat'], string[]> = {
  instruction: ['instruction', 'input', 'output'], completion: ['prompt', 'completion'], text: [], hub: ['instruction', 'input', 'output'],
};

/** Which method options apply given the others (hidden ones are not sent). */
export function methodOptionVisible(method: MethodName, key: string, raw: Record<string, RawValue>): boolean {
  if (method === 'prompt_tuning' && key === 'init_text') return raw.init === 'text';
  if (method === 'prefix_tuning' && key === 'encoder_hidden_size') return raw.prefix_projection === true;
  return true;
}

export function dataOptionKeys(format: FormState['dataFormat']): string[] {
  if (format === 'hub') return ['hub_id', 'hub_split', 'eval_split', 'max_samples'];
  if (format === 'text') return ['file_extensions', 'block_size', 'eval_split', 'max_samples'];
  return ['eval_split', 'max_samples'];
}

export const usesTemplate = (format: FormState['dataFormat']) => format === 'instruction' || format === 'completion' || format === 'hub';

/** The whole form -> a training config (not yet validated). */
export function buildConfig(f: FormState): TrainingConfig {
  const config: Record<string, unknown> = {};
  if (f.runName.trim()) config.run_name = f.runName.trim();
  config.model = { name_or_path: f.modelSource === 'embedded' ? 'embedded' : f.modelSource === 'hub' ? f.hubId.trim() : f.localModel };

  const mspec = methodSpec(f.method).properties;
  const mraw = f.methodOptions[f.method] ?? {};
  config.method = { name: f.method, ...convertAll(mraw, mspec, k => !methodOptionVisible(f.method, k, mraw)) };

  const data: Record<string, unknown> = { format: f.dataFormat };
  if (f.dataFormat !== 'hub') {
    if (f.trainFile) data.train_file = f.trainFile;
    if (f.evalFile) data.eval_file = f.evalFile;
  }
  const keys = new Set(dataOptionKeys(f.dataFormat));
  Object.assign(data, convertAll(f.data, dataProps(), k => !keys.has(k)));
  const columns: Record<string, unknown> = {};
  for (const role of FORMAT_COLUMNS[f.dataFormat]) {
    const v = convert(f.data[`columns.${role}`], columnProps()[role], role);
    if (v !== undefined) columns[role] = v;
  }
  if (Object.keys(columns).length) data.columns = columns;
  config.data = data;

  if (usesTemplate(f.dataFormat)) {
    const template = convertAll(f.template, templateProps());
    if (Object.keys(template).length) config.template = template;
  }
  const training = convertAll(f.training, trainingProps(), k => (f.lengthMode === 'epochs' ? k === 'max_steps' : k === 'epochs'));
  if (Object.keys(training).length) config.training = training;
  const exp = convertAll(f.export, exportProps());
  if (Object.keys(exp).length) config.export = exp;
  return config as unknown as TrainingConfig;
}

/** Placeholder text for a field: its schema default. */
export function placeholderFor(spec: PropSpec, key?: string): string | undefined {
  if (key === 'encoder_hidden_size') return "the model's hidden size";
  if (spec.default === undefined) return undefined;
  return Array.isArray(spec.default) ? spec.default.join(', ') : String(spec.default);
}

/** Hint under a field: description plus the allowed range. */
export function hintFor(spec: PropSpec): string | undefined {
  const range = spec.minimum !== undefined || spec.maximum !== undefined || spec.exclusiveMinimum !== undefined
    ? `${spec.exclusiveMinimum !== undefined ? `> ${spec.exclusiveMinimum}` : spec.minimum !== undefined ? `≥ ${spec.minimum}` : ''}${spec.maximum !== undefined ? `${spec.minimum !== undefined || spec.exclusiveMinimum !== undefined ? ', ' : ''}≤ ${spec.maximum}` : ''}`
    : '';
  const parts = [spec.description, range && `(${range})`].filter(Boolean);
  return parts.length ? parts.join(' ') : undefined;
}

/** The learning rate a method trains with when the form leaves it empty (x-default-learning-rate in the schema). */
export function methodDefaultLearningRate(name: MethodName): number {
  return (schema.definitions[`method_${name}`] as unknown as Record<string, number>)['x-default-learning-rate'];
}

/** Optimizer steps as the trainer counts them: batches of batch × GPUs per epoch, then accumulation, then epochs. */
export function optimizerSteps(trainRows: number, o: { batchSize: number; gradAccum: number; numGpus: number; epochs: number }): number {
  const perEpoch = Math.ceil(Math.ceil(trainRows / (o.batchSize * o.numGpus)) / o.gradAccum);
  return Math.max(1, Math.ceil(o.epochs * perEpoch));
}

/** A config (a preset's) as form values: what buildConfig(form) turns back into the same config. */
export function formFromConfig(config: TrainingConfig, base: FormState): FormState {
  const raw = (o: Record<string, unknown> | undefined): Record<string, RawValue> => Object.fromEntries(Object.entries(o ?? {})
    .filter(([, v]) => v !== undefined && (typeof v !== 'object' || Array.isArray(v)))
    .map(([k, v]) => [k, typeof v === 'boolean' ? v : Array.isArray(v) ? v.join(', ') : String(v)]));
  const name = config.model.name_or_path;
  const local = name.startsWith('/') || name.startsWith('.') || /^[A-Za-z]:[\\/]/.test(name);
  const { name: method, ...options } = config.method as { name: MethodName } & Record<string, unknown>;
  const { format, train_file, eval_file, columns, ...data } = config.data as unknown as Record<string, unknown> & { format: FormState['dataFormat'] };
  const training = raw(config.training as Record<string, unknown> | undefined);
  return {
    ...base,
    modelSource: name === 'embedded' ? 'embedded' : local ? 'local' : 'hub',
    hubId: name !== 'embedded' && !local ? name : base.hubId,
    localModel: local ? name : base.localModel,
    method,
    methodOptions: { ...base.methodOptions, [method]: raw(options) },
    dataFormat: format,
    trainFile: typeof train_file === 'string' ? train_file : '',
    evalFile: typeof eval_file === 'string' ? eval_file : '',
    data: { ...raw(data), ...Object.fromEntries(Object.entries(raw(columns as Record<string, unknown>)).map(([k, v]) => [`columns.${k}`, v])) },
    template: raw(config.template as Record<string, unknown> | undefined),
    lengthMode: training.max_steps !== undefined ? 'max_steps' : 'epochs',
    training,
    export: raw(config.export as Record<string, unknown> | undefined),
  };
}
