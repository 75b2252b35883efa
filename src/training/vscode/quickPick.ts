// "Start PEFT Training" without a dashboard draft: method -> dataset -> base model, then a config with the
// trainer's defaults. Pure helpers (method list, data format inference) are exported for tests.
import fs from 'node:fs';
import path from 'node:path';
import * as vscode from 'vscode';
import type { DataConfig, MethodName, TrainingConfig } from '../../protocol';
import { sampleDataset } from '../paths';

export const METHOD_PICKS: Array<{ name: MethodName; label: string; detail: string }> = [
  { name: 'lora', label: 'LoRA', detail: 'Low-rank deltas on the attention projections; small, fast, merged for serving. A good default.' },
  { name: 'ia3', label: 'IA3', detail: 'Learned scaling vectors on keys, values and the MLP; the fewest parameters of the reparameterisations.' },
  { name: 'prompt_tuning', label: 'Prompt tuning', detail: 'Trains a few virtual-token embeddings prepended to every input (random or text init).' },
  { name: 'p_tuning', label: 'P-tuning', detail: 'Virtual tokens produced by a small MLP/LSTM prompt encoder.' },
  { name: 'prefix_tuning', label: 'Prefix tuning', detail: 'Per-layer key/value prefixes (optionally through a projection).' },
  { name: 'bitfit', label: 'BitFit', detail: 'Trains only the bias terms; everything else stays frozen.' },
  { name: 'full', label: 'Full fine-tuning', detail: 'Trains every weight; needs the most memory and saves a whole model.' },
];

/** instruction (alpaca rows), completion (prompt/completion rows) or text (code / plain text files, folders). */
export function inferDataFormat(file: string): DataConfig['format'] {
  let stat: fs.Stats;
  try { stat = fs.statSync(file); } catch { return 'instruction'; }
  if (stat.isDirectory()) return 'text';
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

/** The three-step quick pick; undefined when the user cancels. */
export async function pickConfig(): Promise<TrainingConfig | undefined> {
  const method = await vscode.window.showQuickPick(
    METHOD_PICKS.map(m => ({ label: m.label, description: m.name, detail: m.detail, name: m.name })),
    { title: 'Start PEFT Training (1/3): method', placeHolder: 'Which parameter-efficient method?', matchOnDetail: true, ignoreFocusOut: true },
  );
  if (!method) return undefined;
  const dataFile = await pickDataset();
  if (!dataFile) return undefined;
  const model = await pickModel();
  if (!model) return undefined;
  return buildConfig(method.name, dataFile, model);
}

async function pickDataset(): Promise<string | undefined> {
  const sample = sampleDataset();
  const items: Array<vscode.QuickPickItem & { action: 'sample' | 'file' | 'folder' }> = [];
  if (sample) items.push({ label: '$(beaker) Sample code tasks', description: path.basename(sample), detail: sample, action: 'sample' });
  items.push({ label: '$(file) Choose a dataset file…', detail: 'JSON / JSONL / CSV rows: instruction, input, output (or prompt, completion)', action: 'file' });
  items.push({ label: '$(folder) Choose a folder of code or text…', detail: 'Plain text / code files, chunked into blocks', action: 'folder' });
  const pick = await vscode.window.showQuickPick(items, { title: 'Start PEFT Training (2/3): dataset', ignoreFocusOut: true });
  if (!pick) return undefined;
  if (pick.action === 'sample') return sample;
  const uris = await vscode.window.showOpenDialog({
    canSelectFiles: pick.action === 'file', canSelectFolders: pick.action === 'folder', canSelectMany: false,
    defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
    title: pick.action === 'file' ? 'Training dataset' : 'Folder of code / text',
    filters: pick.action === 'file' ? { Datasets: ['jsonl', 'json', 'csv', 'txt'], 'All files': ['*'] } : undefined,
  });
  return uris?.[0]?.fsPath;
}

async function pickModel(): Promise<string | undefined> {
  const items: Array<vscode.QuickPickItem & { action: 'embedded' | 'hub' | 'folder' | 'id' }> = [
    { label: '$(package) Embedded tiny BLOOM', description: 'embedded', detail: 'Bundled with the extension: trains in seconds on a CPU (demo, tests)', action: 'embedded' },
    { label: '$(cloud) bigscience/bloom-560m', description: 'Hugging Face Hub', detail: 'Downloaded on first use (needs internet)', action: 'hub' },
    { label: '$(edit) Another hub id…', detail: 'e.g. bigscience/bloomz-560m, bigscience/bloom-1b1', action: 'id' },
    { label: '$(folder) A local model folder…', detail: 'A folder with config.json and *.safetensors (save_pretrained)', action: 'folder' },
  ];
  const pick = await vscode.window.showQuickPick(items, { title: 'Start PEFT Training (3/3): base model', ignoreFocusOut: true });
  if (!pick) return undefined;
  if (pick.action === 'embedded') return 'embedded';
  if (pick.action === 'hub') return 'bigscience/bloom-560m';
  if (pick.action === 'id') {
    return vscode.window.showInputBox({
      title: 'Hub model id', prompt: 'A BLOOM checkpoint on the Hugging Face Hub', value: 'bigscience/bloomz-560m', ignoreFocusOut: true,
      validateInput: v => (/^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(v.trim()) ? undefined : 'owner/name, e.g. bigscience/bloom-560m'),
    }).then(v => v?.trim());
  }
  const uris = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, title: 'BLOOM model folder' });
  return uris?.[0]?.fsPath;
}
