// Settings and environment lookups for the training service (thin vscode adapter).
import os from 'node:os';
import path from 'node:path';
import * as vscode from 'vscode';
import { resolvePython, type PythonChoice } from '../python';

const SECTION = 'bloomPeft';

/** `bloomPeft.runsDirectory` (absolute, ~, or relative to the first workspace folder), else .bloom-peft/runs, else global storage. */
export function runsDirectory(context: vscode.ExtensionContext): string {
  const configured = vscode.workspace.getConfiguration(SECTION).get<string>('runsDirectory', '').trim();
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  if (configured) {
    const expanded = configured === '~' || configured.startsWith('~/') ? path.join(os.homedir(), configured.slice(1)) : configured;
    if (path.isAbsolute(expanded)) return expanded;
    return path.resolve(folder ?? context.globalStorageUri.fsPath, expanded);
  }
  return folder ? path.join(folder, '.bloom-peft', 'runs') : path.join(context.globalStorageUri.fsPath, 'runs');
}

export function stopTimeoutMs(): number {
  const s = vscode.workspace.getConfiguration(SECTION).get<number>('stopTimeoutSeconds', 30);
  return Math.max(1, Number.isFinite(s) ? s : 30) * 1000;
}

/** `bloomPeft.stopTrainingWhenWindowsClose`: runs end when the last window following them closes (default off). */
export function stopTrainingWhenWindowsClose(): boolean {
  return vscode.workspace.getConfiguration(SECTION).get<boolean>('stopTrainingWhenWindowsClose', false);
}

export function workspaceBaseDir(): string | undefined {
  return vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
}

/** The managed virtual environment made by "Set Up Training Environment". */
export function managedVenvDir(context: vscode.ExtensionContext): string {
  return path.join(context.globalStorageUri.fsPath, 'venv');
}

/** The Python extension's active interpreter, or undefined when ms-python is not installed (never activates a missing one). */
export async function pythonFromExtension(): Promise<string | undefined> {
  if (!vscode.extensions.getExtension('ms-python.python')) return undefined;
  const { PythonExtension } = await import('@vscode/python-extension');
  const api = await PythonExtension.api();
  const active = api.environments.getActiveEnvironmentPath(vscode.workspace.workspaceFolders?.[0]?.uri);
  const resolved = await api.environments.resolveEnvironment(active);
  return resolved?.executable.uri?.fsPath ?? active.path;
}

export function lookupPython(context: vscode.ExtensionContext): Promise<PythonChoice> {
  return resolvePython({
    setting: vscode.workspace.getConfiguration(SECTION).get<string>('pythonPath', ''),
    pythonExtension: pythonFromExtension,
    managedVenv: managedVenvDir(context),
    projectRoot: context.extensionUri.fsPath,
  });
}
