// The TrainingService: the one object the dashboard, the completions, the vscode commands and the CLI all drive.
// It validates a config once at its edge, creates runs and supervises the trainer of the run this window starts
// (below), and hands the rest to one module each: following other windows' runs (following.ts), the dashboard's
// params / preview / check (queries.ts), export and evaluate on a finished run (runCommands.ts). No vscode import.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { forParamsCount, validateConfig, type EvaluationEvent, type Quantization, type TrainerEvent, type TrainingConfig } from '../protocol';
import { applyProgress, RunFollowing, type RunEntry } from './following';
import { isSameProcessAlive, processStartToken } from './processes';
import { resolvePython, type PythonChoice } from './python';
import { TrainingQueries } from './queries';
import { evaluateRun, exportRun } from './runCommands';
import { assertFreeSpace, resolveConfigPaths, RunStore, type RunRecord } from './runStore';
import { stopVerified, superviseRun } from './supervisor';
import {
  TrainingError, type CheckReport, type Disposable, type EventListener, type Logger, type ParamsResult, type PreviewResult,
  type RunEnd, type RunInfo, type RunSummary, type TrainingServiceApi,
} from './types';

export interface TrainingServiceOptions {
  /** runs folder; read on every call so a settings change applies to the next run */
  runsDir: () => string;
  /** interpreter lookup (settings, Python extension, managed venv...) */
  python?: () => Promise<PythonChoice>;
  log?: Logger;
  stopTimeoutMs?: () => number;
  /** folder that relative paths in a config are resolved against (workspace folder / config file folder) */
  baseDir?: () => string | undefined;
  env?: NodeJS.ProcessEnv;
  /** tail events of runs another window / the CLI is training (default true) */
  follow?: boolean;
  /**
   * VS Code: how to start the detached run supervisor (node + dist/run-supervisor.js). Set: trainers are owned by
   * it and survive window reloads and extension-host restarts. Unset (CLI, tests): this process owns the trainer.
   */
  detachedSupervisor?: () => { command: string; args: string[] };
  /** VS Code: bloomPeft.stopTrainingWhenWindowsClose, sent to the supervisors of the runs this window follows */
  stopWhenWindowsClose?: () => boolean;
  /** how long a supervisor waits for a window to come back before that policy stops the run (default 120 s) */
  lastWindowGraceMs?: number;
}

/** How long a run whose last window asked to stop on close waits for a window to come back (a reload). */
export const LAST_WINDOW_GRACE_MS = 120_000;

class Emitter<T extends unknown[]> {
  private listeners = new Set<(...args: T) => void>();
  on(listener: (...args: T) => void): Disposable {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }
  fire(...args: T): void {
    for (const l of [...this.listeners]) {
      try { l(...args); } catch { /* one bad listener must not break the rest */ }
    }
  }
  clear(): void { this.listeners.clear(); }
}

const silent: Logger = { trace() {}, info() {}, warn() {}, error() {} };

export class TrainingService implements TrainingServiceApi, Disposable {
  /** the run this window started */
  private active: RunEntry | undefined;
  private readonly following: RunFollowing;
  private readonly events = new Emitter<[string, TrainerEvent]>();
  private readonly runsChanged = new Emitter<[]>();
  private readonly ended = new Emitter<[RunEnd]>();
  private readonly log: Logger;
  private readonly queries: TrainingQueries;
  private disposed = false;

  constructor(private readonly options: TrainingServiceOptions) {
    this.log = options.log ?? silent;
    this.queries = new TrainingQueries({ python: () => this.python(), env: options.env, log: this.log });
    this.following = new RunFollowing({
      log: this.log, onEvent: (id, e) => this.events.fire(id, e), onEnded: end => this.ended.fire(end), onChanged: () => this.runsChanged.fire(),
      stopWhenWindowsClose: options.stopWhenWindowsClose, leases: options.detachedSupervisor !== undefined,
    });
  }

  get store(): RunStore {
    return new RunStore(this.options.runsDir());
  }

  onEvent(listener: EventListener): Disposable { return this.events.on(listener); }
  onRunsChanged(listener: () => void): Disposable { return this.runsChanged.on(listener); }
  onRunEnded(listener: (end: RunEnd) => void): Disposable { return this.ended.on(listener); }

  current(): RunInfo | undefined {
    return this.active?.info ?? this.following.first()?.info;
  }

  /** Validates, creates the run folder, spawns the trainer. Rejects with a TrainingError the user can act on. */
  async start(config: TrainingConfig, options: { name?: string; baseDir?: string } = {}): Promise<RunInfo> {
    this.ensureIdle();
    const resolved = this.prepareConfig(config, options.baseDir);
    const python = await this.readyPython();
    this.ensureIdle(); // a second start may have raced us through the awaits
    const store = this.store;
    const { id, dir } = store.create(resolved, options.name);
    try {
      return await this.launch(store, id, dir, resolved, python, 'train');
    } catch (e) {
      fs.rmSync(dir, { recursive: true, force: true }); // nothing ran: leave no empty run behind
      throw e;
    }
  }

  /** Continues a run from its newest complete checkpoint, in the same folder (events.jsonl grows). */
  async resume(runId: string): Promise<RunInfo> {
    this.ensureIdle();
    const store = this.store;
    const id = store.resolve(runId);
    if (store.isRunning(id)) throw new TrainingError('run_active', `run ${id} is still training`);
    store.assertNotInUse(id);
    const summary = store.summary(id);
    if (summary.status === 'completed') throw new TrainingError('run_completed', `run ${id} already completed`, 'Start a new run to train further.');
    assertFreeSpace(store.dir(id));
    const config = store.readConfig(id);
    const python = await this.readyPython();
    this.ensureIdle();
    store.clearStopRequest(id);
    return this.launch(store, id, store.dir(id), config, python, 'resume');
  }

  /**
   * Graceful stop of the current run (or of `runId`, even one another window or the CLI owns): the stop-requested
   * file tells the run's owner (run-supervisor.js or the CLI), which stops the trainer and kills its tree after the
   * deadline. Signals are only sent by pid when the owner is gone, and only to a verified trainer (token + command
   * line; processes.verifyProcess): a run.json that cannot be verified is refused with a TrainingError.
   */
  async stop(runId?: string): Promise<void> {
    const deadline = this.options.stopTimeoutMs?.() ?? 30_000;
    const own = this.active;
    if (own?.proc && (!runId || runId === own.info.id)) {
      own.info.state = 'stopping';
      this.store.markStopRequested(own.info.id);
      this.runsChanged.fire();
      await own.proc.stop(deadline);
      return;
    }
    const store = this.store;
    const id = runId ? store.resolve(runId) : own?.info.id ?? this.following.first()?.info.id;
    if (!id) return;
    const record = store.readRecord(id);
    if (!record || !store.isRunning(id, record)) return;
    store.markStopRequested(id);
    const entry = own?.info.id === id ? own : this.following.get(id);
    if (entry) entry.info.state = 'stopping';
    this.runsChanged.fire();
    const ownerAlive = () => isSameProcessAlive(record.ownerPid, record.ownerToken) && !!record.ownerToken;
    const trainerAlive = () => isSameProcessAlive(record.pid, record.pidToken);
    if (ownerAlive()) {
      // the owner stops it within `deadline` (its own, from its start) and then kills the tree: give it that and more
      const until = Date.now() + deadline + 15_000;
      while (trainerAlive() && ownerAlive() && Date.now() < until) await sleep(200);
    }
    if (trainerAlive()) {
      this.log.warn(`${id}: the trainer (pid ${record.pid}) is still running and its owner ${ownerAlive() ? 'did not stop it' : 'is gone'}: signalling it`);
      await stopVerified(record.pid, record.pidToken, store.dir(id), deadline);
    }
    // the owner records the end; wait briefly for it so the status the caller reads next is final
    const until = Date.now() + 5_000;
    while (ownerAlive() && store.readRecord(id)?.endedAt === undefined && Date.now() < until) await sleep(100);
  }

  async listRuns(): Promise<RunSummary[]> {
    const owned = new Set(this.active?.proc ? [this.active.info.id] : []);
    const store = this.store;
    const runs = store.list(owned);
    // a run started elsewhere (CLI, another window) after we activated: follow it from now on
    if (this.options.follow !== false && !this.disposed) {
      let found = false;
      for (const r of runs) {
        if (r.status !== 'running' || r.id === this.active?.info.id || this.following.has(r.id)) continue;
        const record = store.readRecord(r.id);
        if (record) { this.following.follow(store, r.id, record); found = true; }
      }
      if (found) setImmediate(() => this.runsChanged.fire());
    }
    return runs;
  }

  async readEvents(runId: string): Promise<TrainerEvent[]> {
    return this.store.readEvents(this.store.resolve(runId));
  }

  async deleteRun(runId: string): Promise<void> {
    const store = this.store;
    const id = store.resolve(runId);
    if (this.active?.info.id === id) throw new TrainingError('run_active', `run ${id} is training`, 'Stop it first.');
    store.delete(id);
    this.runsChanged.fire();
  }

  /**
   * `python -m bloom_peft export --run-dir DIR [--quantize Q]`: ONNX export for the completion engine (weights as
   * `quantize`, else as the run's config says); with `hf`, `export-hf`: a Hugging Face checkpoint (RUN/hf). Returns
   * the folder. The trainer's events go to the log; an error event becomes a TrainingError.
   */
  async exportRun(runId: string, opts: { signal?: AbortSignal; onLog?: (line: string) => void; hf?: boolean; quantize?: Quantization } = {}): Promise<string> {
    if (opts.hf && opts.quantize) throw new TrainingError('bad_options', 'a Hugging Face checkpoint is not quantized', 'Leave quantize out with hf, or export ONNX.');
    const store = this.store;
    const id = store.resolve(runId);
    if (store.isRunning(id)) throw new TrainingError('run_active', `run ${id} is still training`, 'Wait for it to finish or stop it first.');
    store.assertNotInUse(id);
    const python = await this.readyPython();
    const out = await exportRun(store.dir(id), { python: python.path, env: this.options.env, log: this.log, ...opts });
    this.runsChanged.fire();
    return out;
  }

  /**
   * `python -m bloom_peft evaluate --run-dir DIR`: the run's adapter and the base model answer the held-out rows.
   * The `evaluation` event is appended to the run's events.jsonl (so History, the Run view and `runs` show it) and
   * sent to event listeners like a trainer event; an error event becomes a TrainingError.
   */
  async evaluateRun(runId: string, opts: { signal?: AbortSignal; onLog?: (line: string) => void } = {}): Promise<EvaluationEvent> {
    const store = this.store;
    const id = store.resolve(runId);
    if (store.isRunning(id)) throw new TrainingError('run_active', `run ${id} is still training`, 'It is evaluated when it finishes.');
    const python = await this.readyPython();
    const evaluation = await evaluateRun(store.dir(id), { python: python.path, env: this.options.env, log: this.log, ...opts });
    fs.appendFileSync(store.eventsFile(id), JSON.stringify(evaluation) + '\n');
    this.events.fire(id, evaluation);
    this.runsChanged.fire();
    return evaluation;
  }

  /** Trainable / total parameters of a config, without loading weights or data (cached; latest request wins). */
  params(config: TrainingConfig): Promise<ParamsResult> {
    return this.queries.params(this.prepareConfig(forParamsCount(config), undefined, false));
  }

  /** The first rows exactly as the model sees them (cached; latest request wins). */
  preview(config: TrainingConfig, rows = 3): Promise<PreviewResult> {
    return this.queries.preview(this.prepareConfig(config, undefined, false), rows);
  }

  /** Environment report (works without torch). */
  check(): Promise<CheckReport> {
    return this.queries.check();
  }

  /** The Python the next run would use. */
  python(): Promise<PythonChoice> {
    return this.options.python ? this.options.python() : resolvePython({ env: this.options.env });
  }

  /**
   * Looks for runs another window or the CLI is training on this machine and follows them (tails their
   * events.jsonl). Runs whose trainer died without an end show as "interrupted" in listRuns (resumable).
   */
  async reattach(): Promise<RunSummary[]> {
    if (this.options.follow === false) return [];
    const store = this.store;
    const running: RunSummary[] = [];
    for (const id of store.ids()) {
      if (this.active?.info.id === id || this.following.has(id)) continue;
      const record = store.readRecord(id);
      if (!record || !store.isRunning(id, record)) continue;
      running.push(store.summary(id));
      this.following.follow(store, id, record);
    }
    if (running.length) this.runsChanged.fire();
    return running;
  }

  /**
   * Synchronous (deactivate, process exit). A trainer this process owns (CLI) is killed and its run shows as
   * interrupted; a run owned by a detached supervisor (VS Code) goes on: only the following stops.
   */
  disposeSync(reason = 'VS Code closed the window'): void {
    if (this.disposed) return;
    this.disposed = true;
    const a = this.active;
    a?.unwatch?.();
    if (a?.proc?.running) {
      a.proc.killNow(reason);
      if (a.record) {
        try {
          this.store.writeRecord({ ...a.record, endedAt: Date.now(), signal: 'SIGKILL', outcome: 'interrupted' });
        } catch { /* the folder may be gone */ }
      }
    }
    this.following.dispose();
    this.queries.dispose();
  }

  dispose(): void {
    this.disposeSync();
    this.events.clear();
    this.runsChanged.clear();
    this.ended.clear();
  }

  // ---------------------------------------------------------------------------------------------------

  private ensureIdle(): void {
    if (this.disposed) throw new TrainingError('disposed', 'the training service was shut down');
    if (this.active) {
      throw new TrainingError('busy', `a training run is already in progress (${this.active.info.id})`, 'Stop it first, or wait for it to finish.');
    }
  }

  /** Schema validation + relative paths made absolute + data files checked, with field-naming errors. */
  private prepareConfig(config: TrainingConfig, baseDir?: string, checkFiles = true): TrainingConfig {
    const issues = validateConfig(config);
    if (issues.length) {
      const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
      throw new TrainingError('invalid_config', `Invalid training config: ${issues[0].message}${more}`,
        'Fix the field named above; schemas/training-config.schema.json lists every option.', issues);
    }
    const base = baseDir ?? this.options.baseDir?.() ?? process.cwd();
    const resolved = resolveConfigPaths(config, base);
    if (checkFiles) {
      for (const field of ['train_file', 'eval_file'] as const) {
        const p = resolved.data[field];
        if (p !== undefined && !fs.existsSync(p)) {
          throw new TrainingError('missing_file', `/data/${field}: file not found: ${p}`,
            `Pick an existing dataset file (relative paths are resolved against ${base}).`, [{ path: `/data/${field}`, message: `file not found: ${p}` }]);
        }
      }
    }
    return resolved;
  }

  private async readyPython(): Promise<PythonChoice> {
    const python = await this.python();
    if (!python.ready) {
      throw new TrainingError('python_not_ready',
        `The Python environment for training is not ready: ${python.path} (${python.source}) lacks torch, transformers or peft.`,
        'Run "Bloom PEFT: Set Up Training Environment" from the Command Palette, or point bloomPeft.pythonPath (CLI: --python or $BLOOM_PEFT_PYTHON) at an interpreter that has them.');
    }
    return python;
  }

  private async launch(store: RunStore, id: string, dir: string, config: TrainingConfig, python: PythonChoice, command: 'train' | 'resume'): Promise<RunInfo> {
    const info: RunInfo = {
      id, dir, config, pid: 0, state: 'running', owned: true, resumed: command === 'resume', startedAt: Date.now(), step: 0,
    };
    if (this.options.detachedSupervisor) return this.launchDetached(store, id, info, python, command);
    let run: Awaited<ReturnType<typeof superviseRun>>;
    try {
      run = await superviseRun({
        store, runId: id, command, owner: 'cli', python: python.path, env: this.options.env, log: this.log,
        stopTimeoutMs: this.options.stopTimeoutMs?.() ?? 30_000, onEvent: e => { applyProgress(info, e); this.events.fire(id, e); },
      });
    } catch (e) {
      throw new TrainingError('python_missing', `cannot start the trainer with ${python.path}: ${(e as Error).message}`,
        'Set bloomPeft.pythonPath, or run "Bloom PEFT: Set Up Training Environment".');
    }
    const { proc, record } = run;
    info.pid = proc.pid;
    this.active = { info, proc, record };
    this.log.info(`${command} ${id}: pid ${proc.pid}, python ${python.path} (${python.source})`);
    this.runsChanged.fire();
    void run.ended.then(end => {
      if (this.disposed) return;
      if (this.active?.proc === proc) this.active = undefined;
      this.log.info(`${id}: ${end.outcome} (${end.signal ? `signal ${end.signal}` : `exit ${end.exitCode}`})`);
      this.ended.fire(end);
      this.runsChanged.fire();
    });
    return info;
  }

  /** VS Code: run-supervisor.js owns the trainer; this window follows the run through run.json + events.jsonl. */
  private async launchDetached(store: RunStore, id: string, info: RunInfo, python: PythonChoice, command: 'train' | 'resume'): Promise<RunInfo> {
    const sup = this.options.detachedSupervisor!();
    const tail = this.following.tail(store, info);
    const child = spawn(sup.command, [
      ...sup.args, '--runs-dir', store.root, '--run-id', id, '--command', command, '--python', python.path,
      '--stop-timeout-ms', String(this.options.stopTimeoutMs?.() ?? 30_000), '--last-window-grace-ms', String(this.options.lastWindowGraceMs ?? LAST_WINDOW_GRACE_MS),
    ], {
      // its own session: neither a window reload nor the extension host's end reaches it
      detached: true, stdio: ['ignore', 'pipe', 'ignore'], cwd: info.dir, windowsHide: true,
      env: { ...(this.options.env ?? process.env), ELECTRON_RUN_AS_NODE: '1' }, // VS Code's execPath is Electron
    });
    let handshake: { pid?: number; pidToken?: string; error?: string; code?: string };
    try {
      handshake = await readHandshake(child);
    } finally {
      child.stdout?.destroy();
      child.unref();
    }
    if (handshake.code === 'run_in_use') {
      throw new TrainingError('run_in_use', handshake.error!, 'Wait for it to finish or stop it first (Stop in VS Code, or `bloom-peft stop RUN`).');
    }
    if (!handshake.pid) {
      throw new TrainingError('python_missing', `cannot start the trainer with ${python.path}: ${handshake.error ?? 'the run supervisor gave no answer'}`,
        'Set bloomPeft.pythonPath, or run "Bloom PEFT: Set Up Training Environment".');
    }
    info.pid = handshake.pid;
    // run.json names our trainer, unless a racing start (refused by the run lock) overwrote it for a moment
    const written = store.readRecord(id);
    const record: RunRecord = written?.pid === handshake.pid ? written : {
      version: 1, id, command, pid: handshake.pid, pidToken: handshake.pidToken, host: os.hostname(), ownerPid: child.pid!,
      ownerToken: processStartToken(child.pid!), owner: 'detached', startedAt: info.startedAt,
    };
    const entry: RunEntry = { info, record, tail };
    this.active = entry;
    this.following.watch(store, entry, () => { if (this.active === entry) this.active = undefined; });
    this.log.info(`${command} ${id}: trainer pid ${handshake.pid} owned by run supervisor pid ${child.pid}, python ${python.path} (${python.source})`);
    this.runsChanged.fire();
    return info;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise(r => setTimeout(r, ms));
}

/** The run supervisor's one stdout line: {"pid","pidToken"} or {"error"}; or its exit without one. */
function readHandshake(child: import('node:child_process').ChildProcess, timeoutMs = 60_000): Promise<{ pid?: number; pidToken?: string; error?: string; code?: string }> {
  return new Promise(resolve => {
    let text = '';
    const done = (v: { pid?: number; pidToken?: string; error?: string; code?: string }) => { clearTimeout(timer); resolve(v); };
    const timer = setTimeout(() => done({ error: `no answer within ${timeoutMs / 1000} s` }), timeoutMs);
    child.once('error', e => done({ error: e.message }));
    child.once('close', code => done({ error: `the run supervisor exited with code ${code}` }));
    child.stdout?.on('data', (b: Buffer) => {
      text += b.toString('utf8');
      const nl = text.indexOf('\n');
      if (nl < 0) return;
      try { done(JSON.parse(text.slice(0, nl))); } catch { done({ error: `unexpected answer: ${text.slice(0, 200)}` }); }
    });
  });
}
