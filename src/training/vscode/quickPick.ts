// "Start PEFT Training" without a dashboard draft: method -> dataset -> base model, then a config with the
// trainer's defaults (built by ../quickConfig.ts).
import path from 'node:path';
import * as vscode from 'vscode';
import type { TrainingConfig } from '../../protocol';
import { sampleDataset } from '../paths';
import { buildConfig, METHOD_PICKS } from '../quickConfig';

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
