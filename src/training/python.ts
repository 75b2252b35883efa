// Finding the Python interpreter for the trainer, running one-shot trainer commands (params, preview,
// check, export), and creating the managed virtual environment ("Set Up Training Environment").
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { extensionRoot, requirementsLock, trainerSourceDir, venvPython } from './paths';
import { signalGroup } from './processes';
import { TrainingError } from './types';

export type PythonSource = 'env' | 'setting' | 'python-extension' | 'managed' | 'project' | 'system';

export interface PythonChoice {
  path: string;
  source: PythonSource;
  /** torch, transformers and peft are importable */
  ready: boolean;
}

export interface PythonLookup {
  /** the bloomPeft.pythonPath setting */
  setting?: string;
  /** the Python extension's active interpreter (absent when ms-python is not installed) */
  pythonExtension?: () => Promise<string | undefined>;
  /** the managed venv folder in the extension's global storage */
  managedVenv?: string;
  /** project root whose .venv is used in development, tests and the CLI (default: the extension root) */
  projectRoot?: string;
  env?: NodeJS.ProcessEnv;
}

// what `python -m bloom_peft check` calls REQUIRED: a Python missing any of these cannot count, preview or train
const TRAINER_MODULES = ['torch', 'transformers', 'peft', 'accelerate', 'safetensors', 'tokenizers', 'jsonschema', 'numpy'];

/**
 * Order: $BLOOM_PEFT_PYTHON, the pythonPath setting (both used as given), the Python extension's interpreter
 * if it already has the trainer's packages, the managed venv, the project's .venv, then whatever exists
 * (reported not ready, so the caller can offer "Set Up Training Environment").
 */
export async function resolvePython(lookup: PythonLookup = {}): Promise<PythonChoice> {
  const env = lookup.env ?? process.env;
  const explicit: Array<[string | undefined, PythonSource]> = [[env.BLOOM_PEFT_PYTHON, 'env'], [lookup.setting, 'setting']];
  for (const [p, source] of explicit) {
    if (p && p.trim()) return { path: p.trim(), source, ready: await hasTrainerPackages(p.trim()) };
  }
  let fromExtension: string | undefined;
  try {
    fromExtension = await lookup.pythonExtension?.();
  } catch {
    fromExtension = undefined; // ms-python missing or failing: skip it
  }
  if (fromExtension && (await hasTrainerPackages(fromExtension))) return { path: fromExtension, source: 'python-extension', ready: true };
  for (const [dir, source] of [[lookup.managedVenv, 'managed'], [path.join(lookup.projectRoot ?? safeRoot() ?? '', '.venv'), 'project']] as const) {
    if (!dir) continue;
    const py = venvPython(dir);
    if (fs.existsSync(py)) return { path: py, source, ready: await hasTrainerPackages(py) };
  }
  if (fromExtension) return { path: fromExtension, source: 'python-extension', ready: false };
  const system = process.platform === 'win32' ? 'python' : 'python3';
  return { path: system, source: 'system', ready: await hasTrainerPackages(system) };
}

const readyCache = new Map<string, boolean>();

/** Cheap check (no imports, find_spec only: ~50 ms) that the trainer's packages are installed. */
export async function hasTrainerPackages(python: string): Promise<boolean> {
  const key = `${python}\0${mtime(python)}`;
  const cached = readyCache.get(key);
  if (cached !== undefined) return cached;
  const code = `import importlib.util as u, sys; sys.exit(0 if all(u.find_spec(m) for m in ${JSON.stringify(TRAINER_MODULES)}) else 3)`;
  const r = await runProcess(python, ['-c', code], { timeoutMs: 20_000 }).catch(() => undefined);
  const ok = r?.code === 0;
  readyCache.set(key, ok);
  return ok;
}

export function forgetPythonChecks(): void {
  readyCache.clear();
}

/** Environment for every trainer process: PYTHONPATH = the bundled trainer, unbuffered, UTF-8. */
export function trainerEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const src = trainerSourceDir();
  return {
    ...base,
    PYTHONPATH: base.PYTHONPATH ? `${src}${path.delimiter}${base.PYTHONPATH}` : src,
    PYTHONUNBUFFERED: '1',
    PYTHONIOENCODING: 'utf-8',
    PYTHONNOUSERSITE: base.PYTHONNOUSERSITE ?? '1',
    TOKENIZERS_PARALLELISM: base.TOKENIZERS_PARALLELISM ?? 'false',
  };
}

export interface ProcessResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  signal?: AbortSignal;
  onStdout?: (text: string) => void;
  onStderr?: (text: string) => void;
}

/** Runs a command in its own process group; timeout / abort kill the whole group. Rejects only if it cannot start. */
export function runProcess(command: string, args: string[], options: RunOptions = {}): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) return reject(abortError());
    const child = spawn(command, args, {
      cwd: options.cwd, env: options.env ?? process.env, detached: process.platform !== 'win32', stdio: ['ignore', 'pipe', 'pipe'],
      windowsHide: true,
    });
    let stdout = '';
    let stderr = '';
    let aborted = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; options.onStdout?.(d); });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; options.onStderr?.(d); });
    const kill = () => { if (child.pid) signalGroup(child.pid, 'SIGKILL'); };
    const timer = options.timeoutMs ? setTimeout(kill, options.timeoutMs) : undefined;
    const onAbort = () => { aborted = true; kill(); };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', e => { clearTimeout(timer); options.signal?.removeEventListener('abort', onAbort); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      if (child.pid) signalGroup(child.pid, 'SIGKILL'); // leftovers of the group
      if (aborted) reject(abortError());
      else resolve({ code, signal, stdout, stderr });
    });
  });
}

function abortError(): Error {
  const e = new Error('cancelled');
  e.name = 'AbortError';
  return e;
}

/**
 * Runs `python -m bloom_peft <args>` and returns its JSON result from stdout (the last line that parses as
 * JSON, so a stray line before it does not matter). A non-zero exit becomes a TrainingError carrying the
 * trainer's error event (message + hint) or its stderr tail.
 */
export async function runTrainerJson<T>(python: string, args: string[], options: RunOptions = {}): Promise<T> {
  let r: ProcessResult;
  try {
    r = await runProcess(python, ['-m', 'bloom_peft', ...args], { cwd: trainerSourceDir(), env: trainerEnv(options.env), ...options });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new TrainingError('python_missing', `cannot run Python "${python}": ${(e as Error).message}`,
      'Set bloomPeft.pythonPath, or run "Bloom PEFT: Set Up Training Environment".');
  }
  const lines = r.stdout.split('\n').map(l => l.trim()).filter(Boolean);
  let errorEvent: { code?: string; message?: string; hint?: string } | undefined;
  let result: unknown;
  for (const line of lines) {
    try {
      const v = JSON.parse(line);
      if (v && typeof v === 'object' && v.type === 'error' && v.v === 1) errorEvent = v;
      else result = v;
    } catch { /* not JSON */ }
  }
  // params / preview answer errors as {"error": {code, message, hint, file, line, field}}
  const answered = (result as { error?: { code?: string; message?: string; hint?: string; field?: string; file?: string; line?: number } } | undefined)?.error;
  if (answered && typeof answered === 'object' && answered.message) {
    throw new TrainingError(answered.code ?? 'trainer_error', answered.message, answered.hint,
      answered.field ? [{ path: answered.field, message: answered.message }] : [],
      typeof answered.file === 'string' ? { file: answered.file, line: typeof answered.line === 'number' ? answered.line : undefined } : undefined);
  }
  if (r.code === 0 && result !== undefined) return result as T;
  if (errorEvent?.message) throw new TrainingError(errorEvent.code ?? 'trainer_error', errorEvent.message, errorEvent.hint);
  const status = r.signal ? `was killed by ${r.signal}` : `exited with code ${r.code}`;
  // an import that fails before the trainer can answer is the environment's problem, not the trainer's
  const missing = /ModuleNotFoundError|ImportError|No module named/.test(r.stderr);
  throw new TrainingError(missing ? 'environment' : 'trainer_failed', `python -m bloom_peft ${args[0]} ${status}: ${tail(r.stderr, 5) || '(no output)'}`,
    missing ? 'The trainer\'s packages are missing: run "Bloom PEFT: Set Up Training Environment" from the Command Palette.' : undefined);
}

export function tail(text: string, lines: number): string {
  return text.split(/\r?\n/).filter(l => l.trim()).slice(-lines).join('\n');
}

export interface SetupOptions {
  /** interpreter used to create the venv (default python3 / python) */
  basePython?: string;
  signal?: AbortSignal;
  /** short progress messages ("Installing torch...") */
  onProgress?: (message: string) => void;
  /** raw pip / venv output, for the log */
  onOutput?: (text: string) => void;
}

/** Creates (or refreshes) the managed venv and installs the trainer's pinned requirements.lock into it. */
export async function setupManagedEnv(venvDir: string, options: SetupOptions = {}): Promise<string> {
  const base = options.basePython ?? (process.platform === 'win32' ? 'python' : 'python3');
  const py = venvPython(venvDir);
  const run = async (cmd: string, args: string[], what: string) => {
    let r: ProcessResult;
    try {
      r = await runProcess(cmd, args, {
        signal: options.signal,
        env: { ...process.env, PIP_RETRIES: '0', PIP_DISABLE_PIP_VERSION_CHECK: '1', PYTHONNOUSERSITE: '1' },
        onStdout: t => { options.onOutput?.(t); progressFromPip(t, options.onProgress); },
        onStderr: t => options.onOutput?.(t),
      });
    } catch (e) {
      if ((e as Error).name === 'AbortError') throw e;
      throw new TrainingError('python_missing', `cannot run "${cmd}": ${(e as Error).message}`,
        'Install Python 3.10+ or set bloomPeft.pythonPath to an interpreter to create the environment from.');
    }
    if (r.code !== 0) {
      const out = tail(r.stderr || r.stdout, 6);
      const hint = /ensurepip|No module named venv/.test(out)
        ? 'This Python lacks the venv module (Debian/Ubuntu: apt install python3-venv).'
        : /No matching distribution|Could not find a version/.test(out)
          ? 'A pinned package is not available from your package index; check pip\'s index settings (pip config list).'
          : undefined;
      throw new TrainingError('setup_failed', `${what} failed (exit ${r.code ?? r.signal}): ${out}`, hint);
    }
  };
  if (!fs.existsSync(py)) {
    fs.mkdirSync(path.dirname(venvDir), { recursive: true });
    options.onProgress?.('Creating the virtual environment…');
    await run(base, ['-m', 'venv', venvDir], 'creating the virtual environment');
  }
  options.onProgress?.('Installing the trainer\'s packages (torch, transformers, peft…)…');
  await run(py, ['-m', 'pip', 'install', '--retries', '0', '--progress-bar', 'off', '-r', requirementsLock()], 'pip install');
  forgetPythonChecks();
  return py;
}

function progressFromPip(text: string, onProgress?: (m: string) => void): void {
  if (!onProgress) return;
  for (const line of text.split('\n')) {
    const m = /^(Collecting|Installing collected packages:|Successfully installed)\s*(.*)$/.exec(line.trim());
    if (m) onProgress(`${m[1].replace(':', '')} ${m[2].slice(0, 80)}`.trim());
  }
}

function mtime(p: string): number {
  try {
    return fs.statSync(p).mtimeMs;
  } catch {
    return 0;
  }
}

function safeRoot(): string | undefined {
  try {
    return extensionRoot();
  } catch {
    return undefined;
  }
}
