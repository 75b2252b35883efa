// Training presets (schemas/presets.json, the one definition): a base config plus per-method options and training
// values. The CLI (train --preset), the palette quick pick and the dashboard all build configs here. No vscode.
import path from 'node:path';
import presetsJson from '../../schemas/presets.json';
import type { MethodName, TrainingConfig } from '../protocol';

export interface Preset {
  id: string;
  label: string;
  detail: string;
  /** what relative data paths are relative to: files shipped with the extension, or the user's folder */
  data_root: 'extension' | 'workspace';
  default_method: MethodName;
  config: Omit<TrainingConfig, 'method'>;
  methods: Partial<Record<MethodName, { method: Record<string, unknown>; training: Record<string, unknown> }>>;
}

export const PRESETS: readonly Preset[] = (presetsJson as unknown as { presets: Preset[] }).presets;

/** A preset by id ("tutorial") or label ("Tutorial recipe"), case-insensitive; undefined when there is none. */
export function findPreset(name: string): Preset | undefined {
  const key = name.trim().toLowerCase();
  return PRESETS.find(p => p.id === key || p.label.toLowerCase() === key);
}

export interface PresetRoots {
  /** the extension / project root: shipped examples live under it */
  extension: string;
  /** the folder relative workspace paths mean (the CLI's working directory, the first workspace folder) */
  workspace: string;
}

/**
 * The preset's config for one method (its default method when omitted): the base config, the method's options,
 * and its training values over the base's. Relative data paths become absolute against the preset's root.
 */
export function presetConfig(preset: Preset, method: MethodName | undefined, roots: PresetRoots): TrainingConfig {
  const name = method ?? preset.default_method;
  const extra = preset.methods[name];
  if (!extra) throw new Error(`preset "${preset.id}" has no values for method ${name}`);
  const config = structuredClone(preset.config) as TrainingConfig;
  (config as { method: unknown }).method = { name, ...extra.method };
  config.training = { ...config.training, ...extra.training } as TrainingConfig['training'];
  const root = preset.data_root === 'extension' ? roots.extension : roots.workspace;
  const data = config.data as unknown as Record<string, unknown>;
  for (const key of ['train_file', 'eval_file']) {
    const p = data[key];
    if (typeof p === 'string' && !path.isAbsolute(p)) data[key] = path.join(root, p);
  }
  return config;
}

