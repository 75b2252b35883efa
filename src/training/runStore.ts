// Runs on disk: <runs>/<timestamp>-<method>[-name]/ with config.json, events.jsonl, trainer.log, run.json
// (who runs it: pid + process start token + exit record), checkpoints/, adapter/, export/.
// A run's status is computed from its events and run.json, so any window or the CLI sees the same truth.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DoneEvent, ErrorEvent, EvaluationEvent, ProgressEvent, StartedEvent, TrainerEvent, TrainingConfig } from '../protocol';
import type { RunRecord } from '../protocol/generated/run-record';
import { JsonLinesParser, parseLine } from './jsonLines';
import { isSameProcessAlive } from './processes';
import type { RunEnd, RunStatus, RunSummary } from './types';
import { TrainingError } from './types';

/** run.json: the process record of the latest trainer attempt (train or resume) of a run (schemas/run-record.schema.json). */
export type { RunRecord };

export const STOP_REQUEST_FILE = 'stop-requested';
/** Written and OS-locked by the trainer (trainer/src/bloom_peft/runlock.py) while it trains, resumes or exports. */
export const RUN_LOCK_FILE = 'run.lock';
/** Windows following a run: one lease file per extension host (see supervisor.ts, WatcherLeases). */
export const WATCHERS_DIR = 'watchers';

/** The content of run.lock: who holds (or last held) the run. */
export interface LockHolder { pid: number; token?: string | null; command?: string; host?: string; time?: number; parent_pid?: number; parent_token?: string | null }

export class RunStore {
  constructor(readonly root: string) {}

  dir(runId: string): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(runId)) throw new TrainingError('bad_run_id', `not a run id: "${runId}"`);
    return path.join(this.root, runId);
  }

  /** Finds a run by id, 'latest', a unique id prefix / suffix (CLI convenience), or its folder path. */
  resolve(ref: string): string {
    if (path.isAbsolute(ref) || ref.includes(path.sep) || ref.startsWith('.')) {
      const abs = path.resolve(ref);
      if (!fs.existsSync(path.join(abs, 'config.json'))) throw new TrainingError('no_run', `${abs} is not a run folder (no config.json)`);
      if (path.dirname(abs) !== path.resolve(this.root)) throw new TrainingError('no_run', `${abs} is not in the runs folder ${this.root}`, 'Pass --runs-dir with its parent folder.');
      return path.basename(abs);
    }
    const ids = this.ids();
    if (ids.includes(ref)) return ref;
    // the newest run: the timestamp in its name, then when its config was written (same-second runs)
    if (ref === 'latest' && ids.length) {
      const key = (id: string) => [id.slice(0, 15), statTime(path.join(this.root, id, 'config.json'), 'mtime') ?? 0] as const;
      return ids.reduce((best, id) => {
        const [a, b] = [key(id), key(best)];
        return a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]) ? id : best;
      });
    }
    const matches = ids.filter(id => id.startsWith(ref) || id.endsWith(ref));
    if (matches.length === 1) return matches[0];
    if (matches.length > 1) throw new TrainingError('ambiguous_run', `"${ref}" matches ${matches.length} runs: ${matches.slice(0, 5).join(', ')}`, 'Use the full run id.');
    throw new TrainingError('no_run', `no run "${ref}" in ${this.root}`, 'List the runs with `bloom-peft runs`.');
  }

  ids(): string[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.root);
    } catch {
      return [];
    }
    return names.filter(n => fs.existsSync(path.join(this.root, n, 'config.json'))).sort();
  }

  /** Creates <timestamp>-<method>[-name] (suffix -2, -3... on a clash) and writes config.json. */
  create(config: TrainingConfig, name?: string, now = new Date()): { id: string; dir: string } {
    fs.mkdirSync(this.root, { recursive: true });
    assertFreeSpace(this.root);
    const stamp = [now.getFullYear(), pad(now.getMonth() + 1), pad(now.getDate())].join('') + '-' + [pad(now.getHours()), pad(now.getMinutes()), pad(now.getSeconds())].join('');
    const safeName = (name ?? config.run_name)?.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[-.]+/, '').slice(0, 60);
    const base = [stamp, config.method.name, safeName].filter(Boolean).join('-');
    for (let i = 1; ; i++) {
      const id = i === 1 ? base : `${base}-${i}`;
      const dir = path.join(this.root, id);
      try {
        fs.mkdirSync(dir); // atomic claim of the name
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw e;
      }
      writeJsonAtomic(path.join(dir, 'config.json'), config);
      return { id, dir };
    }
  }

  readConfig(runId: string): TrainingConfig {
    return JSON.parse(fs.readFileSync(path.join(this.dir(runId), 'config.json'), 'utf8'));
  }

  readRecord(runId: string): RunRecord | undefined {
    try {
      return JSON.parse(fs.readFileSync(path.join(this.dir(runId), 'run.json'), 'utf8'));
    } catch {
      return undefined;
    }
  }

  writeRecord(record: RunRecord): void {
    writeJsonAtomic(path.join(this.dir(record.id), 'run.json'), record);
  }

  /** run.lock's content as written by its last holder (alive or not), if it is readable. */
  readLock(runId: string): LockHolder | undefined {
    try {
      const holder = JSON.parse(fs.readFileSync(path.join(this.dir(runId), RUN_LOCK_FILE), 'utf8').trim());
      return holder && typeof holder.pid === 'number' ? holder : undefined;
    } catch {
      return undefined;
    }
  }

  /** The process named in run.lock if it is alive and the same incarnation (the OS lock is held while it lives). */
  lockHolder(runId: string): LockHolder | undefined {
    const holder = this.readLock(runId);
    if (!holder || holder.host !== undefined && holder.host !== os.hostname()) return undefined;
    return holder.token && isSameProcessAlive(holder.pid, holder.token) ? holder : undefined;
  }

  /** Refuses (run_in_use, naming the pid) when a process holds the run: train, resume and export are exclusive. */
  assertNotInUse(runId: string): void {
    const h = this.lockHolder(runId);
    if (h) {
      throw new TrainingError('run_in_use', `run ${runId} is in use by pid ${h.pid} (${h.command ?? 'trainer'})`,
        'Wait for it to finish or stop it first (Stop in VS Code, or `bloom-peft stop RUN`).');
    }
  }

  stopRequested(runId: string): boolean {
    return fs.existsSync(path.join(this.dir(runId), STOP_REQUEST_FILE));
  }

  markStopRequested(runId: string): void {
    fs.writeFileSync(path.join(this.dir(runId), STOP_REQUEST_FILE), new Date().toISOString() + '\n');
  }

  clearStopRequest(runId: string): void {
    fs.rmSync(path.join(this.dir(runId), STOP_REQUEST_FILE), { force: true });
  }

  /** Every event of events.jsonl (all attempts, in order); junk and a torn last line are skipped. */
  readEvents(runId: string): TrainerEvent[] {
    let text: string;
    try {
      text = fs.readFileSync(path.join(this.dir(runId), 'events.jsonl'), 'utf8');
    } catch {
      return [];
    }
    const out: TrainerEvent[] = [];
    for (const line of text.split(/\r\n|\r|\n/)) { // a lone CR ends a line too (jsonLines.ts)
      const p = parseLine(line);
      if (p?.kind === 'event') out.push(p.event);
    }
    return out;
  }

  /** True when a trainer for this run is alive on this machine (ours or another process's). */
  isRunning(runId: string, record = this.readRecord(runId)): boolean {
    return !!record && record.endedAt === undefined && record.host === os.hostname() && isSameProcessAlive(record.pid, record.pidToken);
  }

  summary(runId: string, owned = false): RunSummary {
    const dir = this.dir(runId);
    const events = this.readEvents(runId);
    const record = this.readRecord(runId);
    let config: TrainingConfig | undefined;
    try { config = this.readConfig(runId); } catch { config = undefined; }
    const s = summarize(events, {
      running: this.isRunning(runId, record), record, stopRequested: this.stopRequested(runId),
    });
    const checkpoint = newestCheckpoint(dir);
    const exportDir = s.exportDir ?? (fs.existsSync(path.join(dir, 'export', 'manifest.json')) ? path.join(dir, 'export') : undefined);
    const adapterDir = s.adapterDir ?? (fs.existsSync(path.join(dir, 'adapter')) ? path.join(dir, 'adapter') : undefined);
    return {
      ...s, id: runId, dir, owned, exportDir, adapterDir,
      name: config?.run_name ?? s.name,
      method: config?.method.name ?? s.method,
      baseModel: config?.model.name_or_path ?? s.baseModel,
      startedAt: s.startedAt ?? record?.startedAt ?? statTime(dir),
      lastCheckpointStep: checkpoint?.step ?? s.lastCheckpointStep,
      resumable: s.status !== 'running' && s.status !== 'completed',
    };
  }

  /** How the latest attempt ended, from the disk (a run owned by another process: a run supervisor, the CLI). */
  runEnd(runId: string): RunEnd {
    const s = this.summary(runId);
    const record = this.readRecord(runId);
    const outcome: RunEnd['outcome'] = s.status === 'running' ? 'interrupted' : s.status;
    const stderrTail = fileTail(path.join(s.dir, 'trainer.log'), 20);
    const message = s.error ? s.error.message + (s.error.hint ? ` — ${s.error.hint}` : '')
      : outcome === 'completed' ? 'Training completed.' : outcome === 'stopped' ? 'Training stopped.'
        : outcome === 'interrupted' ? `Training was interrupted at step ${s.step}.` : 'Training failed.';
    return {
      runId, dir: s.dir, outcome, exitCode: record?.exitCode ?? null, signal: record?.signal ?? null, error: s.error,
      stderrTail, message, killedAfterDeadline: false, adapterDir: s.adapterDir, exportDir: s.exportDir,
    };
  }

  list(ownedIds: ReadonlySet<string> = new Set()): RunSummary[] {
    return this.ids().map(id => this.summary(id, ownedIds.has(id))).sort((a, b) => (b.startedAt ?? 0) - (a.startedAt ?? 0));
  }

  delete(runId: string): void {
    if (this.isRunning(runId)) throw new TrainingError('run_active', `run ${runId} is still training`, 'Stop it first.');
    const dir = this.dir(runId);
    if (!fs.existsSync(path.join(dir, 'config.json'))) throw new TrainingError('no_run', `no run ${runId} in ${this.root}`);
    fs.rmSync(dir, { recursive: true, force: true });
  }

  eventsFile(runId: string): string {
    return path.join(this.dir(runId), 'events.jsonl');
  }
}

export interface SummarizeContext { running: boolean; record?: RunRecord; stopRequested?: boolean }

/** A run's summary from its events (the latest attempt decides the status). Pure: tested on transcripts. */
export function summarize(events: TrainerEvent[], ctx: SummarizeContext): Omit<RunSummary, 'id' | 'dir' | 'owned' | 'resumable'> {
  let started: StartedEvent | undefined;
  let firstStarted: StartedEvent | undefined;
  let progress: ProgressEvent | undefined;
  let done: DoneEvent | undefined;
  let error: ErrorEvent | undefined;
  let evalLoss: number | null | undefined;
  let lastCheckpointStep: number | undefined;
  let evaluation: EvaluationEvent | undefined;
  for (const e of events) {
    switch (e.type) {
      case 'started':
        started = e; firstStarted ??= e; done = undefined; error = undefined; // a new attempt (resume)
        break;
      case 'progress': progress = e; break;
      case 'eval': evalLoss = e.eval_loss; break;
      case 'checkpoint': lastCheckpointStep = e.step; break;
      case 'error': error = e; break;
      case 'done': done = e; break;
      case 'evaluation': evaluation = e; break; // end of run, or on demand after it (appended by the host)
      default: break; // unknown types: ignored by design
    }
  }
  let status: RunStatus;
  if (ctx.running) status = 'running';
  // the trainer stops by itself when its owner dies (stdin EOF): unless someone asked for that stop, it was interrupted
  else if (done && done.status === 'stopped' && (done as { stop_reason?: string }).stop_reason === 'stdin closed' && !ctx.stopRequested) status = 'interrupted';
  else if (done) status = done.status === 'stopped' ? 'stopped' : 'completed';
  else if (ctx.record?.outcome === 'interrupted') status = 'interrupted';
  else if (ctx.stopRequested && !error) status = 'stopped';
  else if (error || ctx.record?.outcome === 'failed' || (ctx.record?.exitCode ?? 0) !== 0 || ctx.record?.signal) status = 'failed';
  else status = 'interrupted'; // no end written: the supervising window died; resumable
  const config = started?.config;
  const step = done?.step ?? progress?.step ?? started?.resumed_from_step ?? 0;
  // an evaluation speaks for the adapter of its step only (a resumed, extended run has a newer one)
  if (evaluation && evaluation.step !== undefined && evaluation.step !== step) evaluation = undefined;
  const trainable = started?.trainable_params;
  const total = started?.total_params;
  return {
    status,
    name: config?.run_name,
    method: config?.method?.name,
    baseModel: config?.model?.name_or_path,
    startedAt: firstStarted ? firstStarted.time * 1000 : undefined,
    endedAt: done ? done.time * 1000 : ctx.record?.endedAt,
    trainableParams: trainable,
    totalParams: total,
    trainablePercent: trainable !== undefined && total ? (trainable / total) * 100 : undefined,
    step,
    totalSteps: progress?.total_steps ?? started?.total_steps,
    finalTrainLoss: done ? (done.metrics?.train_loss ?? progress?.loss ?? null) : undefined,
    finalEvalLoss: done ? (done.metrics?.eval_loss ?? evalLoss ?? null) : undefined,
    lastLoss: progress?.loss,
    tokensPerS: done?.metrics?.tokens_per_s ?? progress?.tokens_per_s ?? null,
    lastCheckpointStep,
    adapterDir: done?.adapter_dir ?? undefined,
    exportDir: done?.export_dir ?? undefined,
    error: status === 'completed' ? undefined : error ? { code: error.code, message: error.message, hint: error.hint } : ctx.record?.error,
    evaluation,
  };
}

/** Newest complete checkpoint: checkpoints/step-N holding the COMPLETE marker. */
export function newestCheckpoint(runDir: string): { step: number; path: string } | undefined {
  let names: string[];
  try {
    names = fs.readdirSync(path.join(runDir, 'checkpoints'));
  } catch {
    return undefined;
  }
  const steps = names.map(n => /^step-(\d+)$/.exec(n)).filter((m): m is RegExpExecArray => !!m).map(m => Number(m[1])).sort((a, b) => b - a);
  for (const step of steps) {
    const p = path.join(runDir, 'checkpoints', `step-${step}`);
    // the trainer writes COMPLETE last (trainer/src/bloom_peft/checkpoint.py): without it the checkpoint is partial
    if (safeReaddir(p).includes('COMPLETE')) return { step, path: p };
  }
  return undefined;
}

/**
 * Follows a growing events.jsonl (a run another window or the CLI supervises): polls its size, parses
 * only what was appended, handles a torn last line. Stops on done / when stopped.
 */
export class EventsTail {
  private offset = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly parser = new JsonLinesParser();

  constructor(private readonly file: string, private readonly onEvent: (e: TrainerEvent) => void, fromStart = false) {
    if (!fromStart) {
      try { this.offset = fs.statSync(file).size; } catch { this.offset = 0; }
    }
  }

  start(intervalMs = 500): this {
    this.timer = setInterval(() => this.poll(), intervalMs);
    this.timer.unref?.();
    return this;
  }

  /** Reads what was appended since the last poll; returns the events. */
  poll(): TrainerEvent[] {
    let fd: number | undefined;
    const out: TrainerEvent[] = [];
    try {
      const size = fs.statSync(this.file).size;
      if (size < this.offset) this.offset = 0; // truncated / replaced
      if (size === this.offset) return out;
      fd = fs.openSync(this.file, 'r');
      const buf = Buffer.alloc(size - this.offset);
      fs.readSync(fd, buf, 0, buf.length, this.offset);
      this.offset = size;
      for (const p of this.parser.push(buf)) if (p.kind === 'event') out.push(p.event);
    } catch {
      return out;
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
    for (const e of out) this.onEvent(e);
    return out;
  }

  dispose(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

/**
 * Makes a config's relative file paths absolute against `baseDir` (the config file's folder, or the
 * workspace), so the run is self-contained: the trainer runs with another cwd. 'embedded' and hub ids stay.
 */
export function resolveConfigPaths(config: TrainingConfig, baseDir: string): TrainingConfig {
  const c: TrainingConfig = JSON.parse(JSON.stringify(config));
  const abs = (p: string | undefined) => (p === undefined || path.isAbsolute(p) ? p : path.resolve(baseDir, expandHome(p)));
  if (c.data.train_file !== undefined) c.data.train_file = abs(c.data.train_file);
  if (c.data.eval_file !== undefined) c.data.eval_file = abs(c.data.eval_file);
  const m = c.model.name_or_path;
  if (m !== 'embedded' && !path.isAbsolute(m)) {
    const local = path.resolve(baseDir, expandHome(m));
    // a relative folder that exists (or is spelled as a path) is local; anything else is a hub id
    if (/^(\.{1,2}[\\/]|~)/.test(m) || fs.existsSync(path.join(local, 'config.json'))) c.model.name_or_path = local;
  }
  return c;
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}

/** A new run (or a resume) needs room for at least its own bookkeeping; below this the start is refused. */
export const MIN_FREE_BYTES = 8 * 1024 * 1024;
/** run.json and config.json are padded (trailing spaces, valid JSON) to whole blocks of this size, so that a rewrite
 *  in place needs no new block: on a full disk the run's end is still recorded. */
const RESERVED_BLOCK = 4096;

/** Refuses before anything starts when the disk of `dir` is (nearly) full. */
export function assertFreeSpace(dir: string): void {
  let free: number;
  try {
    const s = fs.statfsSync(dir);
    free = s.bavail * s.bsize;
  } catch {
    return; // statfs unsupported here: the trainer still reports disk_full if it happens
  }
  if (free < MIN_FREE_BYTES) {
    throw new TrainingError('disk_full', `the disk of ${dir} is full (${(free / 1024 / 1024).toFixed(1)} MiB free)`,
      'Free space on that disk (old runs\' checkpoints/ folders are the largest), or choose another runs folder (bloomPeft.runsDirectory, --runs-dir).');
  }
}

/**
 * Replaces a JSON file: a temp file renamed over it. When the disk is full the temp file cannot be written: it is
 * removed (nothing stray is left) and the existing file is overwritten in place instead, which its reserved blocks
 * allow. A file that does not exist yet cannot be reserved on a full disk: that write throws.
 */
export function writeJsonAtomic(file: string, value: unknown): void {
  const json = JSON.stringify(value, null, 2) + '\n';
  const text = json.padEnd(Math.ceil(json.length / RESERVED_BLOCK) * RESERVED_BLOCK, ' ');
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    const size = (e as NodeJS.ErrnoException).code === 'ENOSPC' && fs.existsSync(file) ? fs.statSync(file).size : 0;
    if (Buffer.byteLength(json) > size) throw e;
    const whole = Buffer.alloc(size, ' '); // the old content is covered to its last byte
    whole.write(json);
    const fd = fs.openSync(file, 'r+');
    try {
      fs.writeSync(fd, whole, 0, size, 0);
    } finally {
      fs.closeSync(fd);
    }
  }
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

function statTime(p: string, which: 'birth' | 'mtime' = 'birth'): number | undefined {
  try {
    const st = fs.statSync(p);
    return which === 'mtime' ? st.mtimeMs : st.birthtimeMs || st.mtimeMs;
  } catch {
    return undefined;
  }
}

/** The last `lines` lines of a text file (reads at most its last 64 KB). */
function fileTail(file: string, lines: number): string {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const size = fs.fstatSync(fd).size;
    const len = Math.min(size, 65536);
    const buf = Buffer.alloc(len);
    fs.readSync(fd, buf, 0, len, size - len);
    return buf.toString('utf8').split(/\r?\n/).filter(l => l.trim()).slice(-lines).join('\n');
  } catch {
    return '';
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function safeReaddir(dir: string): string[] {
  try { return fs.readdirSync(dir); } catch { return []; }
}

