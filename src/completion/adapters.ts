// Adapter resolution: which export serves completions, from the bloomPeft.completions.adapter setting (a run dir,
// an export dir, a run id, or empty = the newest finished run with an export) and workspace trust. Reads the runs
// and the file system only; the service decides what to do with the answer.
import fs from 'node:fs';
import path from 'node:path';
import type { RunSummary } from '../training/types';

/** Where runs come from (the TrainingService fits it). */
export interface RunSource {
  listRuns(): Promise<RunSummary[]>;
  onRunsChanged?(listener: () => void): { dispose(): void };
}

export interface ActiveAdapter {
  exportDir: string;
  runId?: string;
  runDir?: string;
  /** For the status bar and pickers: run name, else the folder name. */
  label: string;
  method?: string;
  /** Chosen automatically (setting empty): the newest run with an export. */
  auto: boolean;
}

/** Something the user should hear about once, with the actions that can fix it. */
export interface CompletionProblem {
  code: string;
  message: string;
  hint?: string;
  actions: Array<'Export Adapter' | 'Choose Adapter' | 'Reload Adapter' | 'Show Log'>;
  /** The run to export, for "Export Adapter". */
  runId?: string;
}

/** What a setting names. */
export interface Resolution {
  /** The adapter to serve; set only when it has an export. */
  adapter?: ActiveAdapter;
  /** Why the setting names nothing servable. Neither is set for an empty setting without an exported run, or
   *  untrusted. */
  problem?: CompletionProblem;
  /** With a problem: the run it is about, still named in the status bar. */
  named?: ActiveAdapter;
}

export interface ResolveContext {
  runs: readonly RunSummary[];
  /** Relative adapter paths are resolved against this (the first workspace folder). */
  baseDir?: string;
  /** Untrusted, an empty setting follows no run: the workspace's runs folder may come from a cloned repository,
   *  and its ONNX model and tokenizer would load into native code. */
  trusted: boolean;
}

export function resolveAdapter(target: string, ctx: ResolveContext): Resolution {
  const wanted = target.trim();
  if (!wanted) {
    if (!ctx.trusted) return {}; // choose one explicitly (user settings)
    const newest = ctx.runs
      .filter(r => r.exportDir && r.status !== 'running' && fs.existsSync(path.join(r.exportDir, 'manifest.json')))
      .sort((a, b) => (b.endedAt ?? b.startedAt ?? 0) - (a.endedAt ?? a.startedAt ?? 0))[0];
    return newest ? { adapter: { ...fromRun(newest, newest.exportDir!), auto: true } } : {};
  }
  const byId = ctx.runs.find(r => r.id === wanted);
  const dir = byId ? byId.dir : absolute(wanted, ctx.baseDir);
  const run = byId ?? ctx.runs.find(r => samePath(r.dir, dir) || (r.exportDir !== undefined && samePath(r.exportDir, dir)));
  const exportDir = findExportDir(dir);
  if (exportDir) return { adapter: run ? fromRun(run, exportDir) : { exportDir, label: path.basename(path.dirname(exportDir)) || exportDir, auto: false, runDir: path.dirname(exportDir) } };
  if (run || fs.existsSync(dir)) {
    return {
      named: run ? fromRun(run, path.join(run.dir, 'export')) : undefined,
      problem: { code: 'EXPORT_MISSING', message: `${run ? `Run "${run.name ?? run.id}"` : dir} has no ONNX export, so it cannot serve completions.`, hint: 'Export it (Export Adapter to ONNX), or choose another adapter.', actions: run ? ['Export Adapter', 'Choose Adapter'] : ['Choose Adapter'], runId: run?.id },
    };
  }
  return { problem: { code: 'ADAPTER_NOT_FOUND', message: `The completion adapter "${target}" was not found (no such run or folder).`, hint: 'Choose an adapter from your runs.', actions: ['Choose Adapter'] } };
}

/** A run dir (with export/) or an export dir itself; undefined when neither holds a manifest. */
export function findExportDir(dir: string): string | undefined {
  if (fs.existsSync(path.join(dir, 'manifest.json'))) return dir;
  if (fs.existsSync(path.join(dir, 'export', 'manifest.json'))) return path.join(dir, 'export');
  return undefined;
}

/** When the export was last written: a re-export changes it, and the engine serving it must reload. */
export function manifestMtime(exportDir: string): number {
  try {
    return fs.statSync(path.join(exportDir, 'manifest.json')).mtimeMs;
  } catch {
    return 0;
  }
}

export function samePath(a: string, b: string): boolean {
  return path.resolve(a) === path.resolve(b);
}

function fromRun(run: RunSummary, exportDir: string): ActiveAdapter {
  return { exportDir, runId: run.id, runDir: run.dir, label: run.name ?? run.id, method: run.method, auto: false };
}

function absolute(p: string, baseDir: string | undefined): string {
  return path.isAbsolute(p) ? p : path.resolve(baseDir ?? process.cwd(), p);
}
