// Building a training config from the quick-pick answers (method, dataset, base model): the pure part of
// "Start PEFT Training" without a dashboard draft, kept free of vscode so it is unit-tested.
import fs from 'node:fs';
import path from 'node:path';
import type { DataConfig, MethodName, TrainingConfig } from '../protocol';
import { presetConfig, type Preset, type PresetRoots } from './presets';

export const METHOD_PICKS: Array<{ name: MethodName; label: string; detail: string }> = [
  { name: 'lora', label: 'LoRA', detail: 'Low-rank deltas on the attention projections; small, fast, merged for serving. A good default.' },
  { name: 'ia3', label: 'IA3', detail: 'Learned scaling vectors on keys, values and the MLP; the fewest parameters of the reparameterisations.' },
  { name: 'prompt_tuning', label: 'Prompt tuning', detail: 'Trains a few virtual-token embeddings prepended to every input (random or text init).' },
  { name: 'p_tuning', label: 'P-tuning', detail: 'Virtual tokens produced by a small MLP/LSTM prompt encoder.' },
  { name: 'prefix_tuning', label: 'Prefix tuning', detail: 'Per-layer key/value prefixes (optionally through a projection).' },
  { name: 'bitfit', label: 'BitFit', detail: 'Trains only the bias terms; everything else stays frozen.' },
  { name: 'full', label: 'Full fine-tuning', detail: 'Trains every weight; needs the most memory and saves a whole model.' },
];

/** A folder written by datasets' save_to_disk (a Dataset or a DatasetDict): rows, not a text corpus. */
export function isSavedDataset(dir: string): boolean {
  return ['dataset_info.json', 'state.json', 'dataset_dict.json'].some(f => fs.existsSync(path.join(dir, f)));
}

/** instruction (alpaca rows, a save_to_disk folder), completion (prompt/completion rows) or text (code / plain text files, folders). */
export function inferDataFormat(file: string): DataConfig['format'] {
  let stat: fs.Stats;
  try { stat = fs.statSync(file); } catch { return 'instruction'; }
  if (stat.isDirectory()) return isSavedDataset(file) ? 'instruction' : 'text';
  const ext = path.extname(file).toLowerCase();
  if (!['.jsonl', '.json', '.csv'].includes(ext)) return 'text';
  let head = '';
  try {
    const fd = fs.openSync(file, 'r');
    const buf = Buffer.alloc(4096);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    fs.closeSync(fd);
    head = buf.subarray(0, n).toString('utf8');
  } catch { /* unreadable: the trainer will say why */ }
  if (/"prompt"\s*:/.test(head) && /"completion"\s*:/.test(head)) return 'completion';
  if (ext === '.csv' && /^\s*prompt\s*,\s*completion/i.test(head)) return 'completion';
  return 'instruction';
}

export function buildConfig(method: MethodName, dataFile: string, model: string): TrainingConfig {
  const format = inferDataFormat(dataFile);
  return {
    version: 1,
    model: { name_or_path: model },
    method: { name: method } as TrainingConfig['method'],
    data: { format, train_file: dataFile },
  };
}

/**
 * A preset's config for the quick pick: its own data, or for a preset whose data lives in the user's folder
 * (the tutorial's alpaca_data_zh) the dataset the user chose, when given.
 */
export function buildPresetConfig(preset: Preset, method: MethodName, roots: PresetRoots, dataPath?: string): TrainingConfig {
  const config = presetConfig(preset, method, roots);
  if (dataPath) {
    config.data = { ...config.data, format: inferDataFormat(dataPath), train_file: dataPath };
    delete config.data.eval_file;
  }
  return config;
}
