// Reads and checks an export folder's manifest.json (contract: docs/export.md). Everything here is
// synchronous and cheap; it runs in the worker before onnxruntime touches the model, so a bad export
// fails with a message naming the file and field instead of an onnxruntime stack trace.
import fs from 'node:fs';
import path from 'node:path';
import type { MethodName } from '../protocol/config';
import { QUANTIZATIONS, type Quantization } from '../protocol/quantization';
import { EngineError } from './errors';

export const SUPPORTED_FORMAT_VERSION = 6;

export interface ExportManifest {
  format_version: 6;
  method: MethodName;
  base_model: string;
  dtype: 'float32' | 'float16';
  quantization: Quantization;
  num_layers: number;
  num_heads: number;
  head_dim: number;
  hidden_size: number;
  vocab_size: number;
  prefix_length: number;
  eos_token_id: number | null;
  pad_token_id: number | null;
  bos_token_id: number | null;
  template: { prompt: string; response_prefix: string } | null;
  instruction_tuned: boolean;
  /** model_data: the external weight files model.onnx reads (none for a small model). */
  files: { model: string; model_data: string[]; tokenizer: string; prefix_kv: string | null };
  tools?: Record<string, string | null>;
  created?: string;
  run_dir?: string | null;
}

/** Absolute paths of the files an export is made of. */
export interface ExportFiles { dir: string; manifest: string; model: string; tokenizer: string; prefixKv: string | null }

const REEXPORT = 'export the run again (command "Export Adapter to ONNX" or `python -m bloom_peft export --run-dir <run>`)';

export function readManifest(exportDir: string): { manifest: ExportManifest; files: ExportFiles } {
  const dir = path.resolve(exportDir);
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new EngineError('EXPORT_NOT_FOUND', `export folder ${dir} does not exist`, { path: dir, hint: 'pick a run that finished training, or ' + REEXPORT });
  }
  if (!st.isDirectory()) throw new EngineError('EXPORT_NOT_FOUND', `${dir} is not a folder`, { path: dir, hint: 'point at the export/ folder of a run (or the run folder itself)' });

  const manifestPath = path.join(dir, 'manifest.json');
  let text: string;
  try {
    text = fs.readFileSync(manifestPath, 'utf8');
  } catch {
    throw new EngineError('MANIFEST_INVALID', `${manifestPath} is missing`, { path: manifestPath, hint: 'the export is incomplete; ' + REEXPORT });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new EngineError('MANIFEST_INVALID', `${manifestPath} is not valid JSON: ${(e as Error).message}`, { path: manifestPath, hint: REEXPORT });
  }
  const manifest = checkManifest(raw, manifestPath);
  const files: ExportFiles = {
    dir,
    manifest: manifestPath,
    model: exportFile(dir, manifest.files.model, 'files.model', manifestPath),
    tokenizer: exportFile(dir, manifest.files.tokenizer, 'files.tokenizer', manifestPath),
    prefixKv: manifest.files.prefix_kv === null ? null : exportFile(dir, manifest.files.prefix_kv, 'files.prefix_kv', manifestPath),
  };
  // External weights: onnxruntime's own error for a missing .data file is obscure.
  for (const [i, name] of manifest.files.model_data.entries()) exportFile(dir, name, `files.model_data[${i}]`, manifestPath);
  return { manifest, files };
}

/** Validates the parsed manifest field by field; the first problem is reported with its field name. */
export function checkManifest(raw: unknown, where = 'manifest.json'): ExportManifest {
  const bad = (field: string, msg: string, hint = REEXPORT): never => {
    throw new EngineError('MANIFEST_INVALID', `${where}: field "${field}" ${msg}`, { path: where, field, hint });
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad('(root)', 'must be a JSON object');
  const m = raw as Record<string, unknown>;

  if (m.format_version !== SUPPORTED_FORMAT_VERSION) {
    if (typeof m.format_version !== 'number') bad('format_version', 'is missing or not a number');
    const older = (m.format_version as number) < SUPPORTED_FORMAT_VERSION;
    throw new EngineError(
      'MANIFEST_VERSION',
      `${where}: export format_version ${m.format_version} is not supported (this engine reads version ${SUPPORTED_FORMAT_VERSION})${older ? ': the export was made by an older version of the trainer' : ''}`,
      { path: where, field: 'format_version', hint: older ? REEXPORT : 'update the extension, or export with the bundled trainer' },
    );
  }
  // Every method is served the same way (docs/export.md), so the engine only needs a name to show;
  // importing the method list would pull the config validator into the worker.
  if (typeof m.method !== 'string' || !m.method) bad('method', `must be the training method's name (got ${JSON.stringify(m.method)})`);
  if (typeof m.base_model !== 'string') bad('base_model', 'must be a string');
  if (m.dtype !== 'float32' && m.dtype !== 'float16') bad('dtype', `must be "float32" or "float16" (got ${JSON.stringify(m.dtype)})`);
  if (m.quantization !== undefined && !QUANTIZATIONS.includes(m.quantization as Quantization)) bad('quantization', `must be ${QUANTIZATIONS.map(q => `"${q}"`).join(', ')} (got ${JSON.stringify(m.quantization)})`);
  for (const f of ['num_layers', 'num_heads', 'head_dim', 'hidden_size', 'vocab_size'] as const) {
    if (!Number.isInteger(m[f]) || (m[f] as number) < 1) bad(f, `must be a positive integer (got ${JSON.stringify(m[f])})`);
  }
  if ((m.num_heads as number) * (m.head_dim as number) !== m.hidden_size) bad('hidden_size', `must equal num_heads * head_dim (${m.num_heads} * ${m.head_dim} != ${m.hidden_size})`);
  if (!Number.isInteger(m.prefix_length) || (m.prefix_length as number) < 0) bad('prefix_length', `must be an integer >= 0 (got ${JSON.stringify(m.prefix_length)})`);
  for (const f of ['eos_token_id', 'pad_token_id', 'bos_token_id'] as const) {
    const v = m[f] ?? null;
    if (v !== null && (!Number.isInteger(v) || (v as number) < 0 || (v as number) >= (m.vocab_size as number))) bad(f, `must be null or a token id below vocab_size ${m.vocab_size} (got ${JSON.stringify(v)})`);
  }
  const t = m.template ?? null;
  if (t !== null && (typeof t !== 'object' || typeof (t as Record<string, unknown>).prompt !== 'string' || typeof (t as Record<string, unknown>).response_prefix !== 'string')) {
    bad('template', 'must be null or {"prompt": string, "response_prefix": string}');
  }
  const files = m.files as Record<string, unknown> | undefined;
  if (typeof files !== 'object' || files === null) bad('files', 'must be an object naming model, tokenizer and prefix_kv');
  if (typeof files!.model !== 'string' || !files!.model) bad('files.model', 'must name the ONNX file');
  if (typeof files!.tokenizer !== 'string' || !files!.tokenizer) bad('files.tokenizer', 'must name tokenizer.json');
  const data = files!.model_data;
  if (!Array.isArray(data) || data.some(d => typeof d !== 'string' || !d)) bad('files.model_data', `must be a list of external data file names, [] when none (got ${JSON.stringify(data)})`);
  const pkv = files!.prefix_kv ?? null;
  if (pkv !== null && typeof pkv !== 'string') bad('files.prefix_kv', 'must be null or a file name');
  if ((m.prefix_length as number) > 0 && pkv === null) bad('files.prefix_kv', `is null but prefix_length is ${m.prefix_length}`);
  if ((m.prefix_length as number) === 0 && pkv !== null) bad('prefix_length', `is 0 but files.prefix_kv names ${pkv}`);

  return {
    ...(m as object),
    quantization: (m.quantization as ExportManifest['quantization']) ?? 'none',
    eos_token_id: (m.eos_token_id as number | null) ?? null,
    pad_token_id: (m.pad_token_id as number | null) ?? null,
    bos_token_id: (m.bos_token_id as number | null) ?? null,
    template: t as ExportManifest['template'],
    instruction_tuned: m.instruction_tuned === true,
    files: { model: files!.model as string, model_data: data as string[], tokenizer: files!.tokenizer as string, prefix_kv: pkv as string | null },
  } as ExportManifest;
}

/** Resolves a manifest file name inside the export folder (never outside it) and checks it exists. */
function exportFile(dir: string, name: string, field: string, manifestPath: string): string {
  const p = path.resolve(dir, name);
  if (path.relative(dir, p).startsWith('..') || path.isAbsolute(path.relative(dir, p))) {
    throw new EngineError('MANIFEST_INVALID', `${manifestPath}: field "${field}" points outside the export folder (${name})`, { path: manifestPath, field, hint: 'file names in the manifest are relative to the export folder' });
  }
  if (!fs.existsSync(p)) throw new EngineError('FILE_MISSING', `${p} is missing (named by "${field}" in ${manifestPath})`, { path: p, field, hint: 'the export is incomplete; ' + REEXPORT });
  // judged by where it really is: a symlink (model.onnx -> a file elsewhere) would load that file into native code
  const real = fs.realpathSync(p);
  const realDir = fs.realpathSync(dir);
  const rel = path.relative(realDir, real);
  if (rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new EngineError('MANIFEST_INVALID', `${p} (named by "${field}" in ${manifestPath}) resolves outside the export folder, to ${real}`, { path: p, field, hint: 'an export holds its own files: links to files elsewhere are refused; copy the file in, or ' + REEXPORT });
  }
  return p;
}

/** A run folder is accepted too: its export/ subfolder is used. */
export function resolveExportDir(dirOrRun: string): string {
  const d = path.resolve(dirOrRun);
  if (!fs.existsSync(path.join(d, 'manifest.json')) && fs.existsSync(path.join(d, 'export', 'manifest.json'))) return path.join(d, 'export');
  return d;
}
