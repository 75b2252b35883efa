// "Start PEFT Training" without a dashboard draft: a preset (schemas/presets.json) and its method, or method ->
// dataset -> base model with the trainer's defaults (configs built by ../quickConfig.ts).
import path from 'node:path';
import * as vscode from 'vscode';
import type { MethodName, TrainingConfig } from '../../protocol';
import { extensionRoot, sampleDataset } from '../paths';
import { PRESETS, type Preset } from '../presets';
import { buildConfig, buildPresetConfig, METHOD_PICKS } from '../quickConfig';

/** The quick pick; undefined when the user cancels. */
export async function pickConfig(): Promise<TrainingConfig | undefined> {
  const start = await vscode.window.showQuickPick(
    [...PRESETS.map(p => ({ label: `$(rocket) ${p.label}`, description: 'preset', detail: p.detail, preset: p as Preset | undefined })),
      { label: '$(settings) Custom…', description: '', detail: 'Choose the method, the dataset and the base model', preset: undefined }],
    { title: 'Start PEFT Training', placeHolder: 'A preset, or your own choices?', matchOnDetail: true, ignoreFocusOut: true },
  );
  if (!start) return undefined;
  if (start.preset) return pickPresetConfig(start.preset);
  const method = await pickMethod('Start PEFT Training (1/3): method');
  if (!method) return undefined;
  const dataFile = await pickDataset();
  if (!dataFile) return undefined;
  const model = await pickModel();
  if (!model) return undefined;
  return buildConfig(method.name, dataFile, model);
}

async function pickMethod(title: string, preset?: Preset): Promise<{ name: MethodName } | undefined> {
  const picks = METHOD_PICKS.filter(m => !preset || m.name in preset.methods)
    .sort((a, b) => Number(b.name === preset?.default_method) - Number(a.name === preset?.default_method));
  return vscode.window.showQuickPick(
    picks.map(m => ({ label: m.label, description: m.name === preset?.default_method ? `${m.name} (the preset's default)` : m.name, detail: m.detail, name: m.name })),
    { title, placeHolder: 'Which parameter-efficient method?', matchOnDetail: true, ignoreFocusOut: true },
  );
}

/** A preset's method, and for a preset whose data lives in the user's folder (the tutorial), that dataset. */
async function pickPresetConfig(preset: Preset): Promise<TrainingConfig | undefined> {
  const method = await pickMethod(`${preset.label}: method`, preset);
  if (!method) return undefined;
  const workspace = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? process.cwd();
  let dataPath: string | undefined;
  if (preset.data_root === 'workspace') {
    const expected = String(preset.config.data.train_file ?? '');
    const inWorkspace = path.join(workspace, expected);
    const items: Array<vscode.QuickPickItem & { action: 'preset' | 'folder' | 'file' }> = [
      { label: `$(folder) ${expected} in the workspace`, detail: inWorkspace, action: 'preset' },
      { label: '$(folder-opened) Choose a save_to_disk folder…', detail: 'A folder written by datasets\' save_to_disk (as the tutorial\'s alpaca_data_zh)', action: 'folder' },
      { label: '$(file) Choose a dataset file…', detail: 'JSON / JSONL / CSV rows: instruction, input, output', action: 'file' },
    ];
    const pick = await vscode.window.showQuickPick(items, { title: `${preset.label}: dataset`, ignoreFocusOut: true });
    if (!pick) return undefined;
    if (pick.action !== 'preset') {
      const uris = await vscode.window.showOpenDialog({
        canSelectFiles: pick.action === 'file', canSelectFolders: pick.action === 'folder', canSelectMany: false,
        defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri, title: `${preset.label}: dataset`,
      });
      dataPath = uris?.[0]?.fsPath;
      if (!dataPath) return undefined;
    }
  }
  return buildPresetConfig(preset, method.name, { extension: extensionRoot(), workspace }, dataPath);
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
