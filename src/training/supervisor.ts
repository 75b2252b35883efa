// One supervised trainer process: `<python> -m bloom_peft train|resume --run-dir DIR`, leader of its own
// process group. Parses the protocol stream, persists every event to events.jsonl, copies stderr to the
// log and trainer.log, stops gracefully over stdin with a deadline and then kills the whole tree.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { DoneEvent, ErrorEvent, TrainerControl, TrainerEvent } from '../protocol';
import { JsonLinesParser, type ParsedLine } from './jsonLines';
import os from 'node:os';
import { trainerSourceDir } from './paths';
import { isSameProcessAlive, killGroupSync, processStartToken, verifyProcess } from './processes';
import { tail, trainerEnv } from './python';
import { WATCHERS_DIR, writeJsonAtomic, type RunRecord, type RunStore } from './runStore';
import { TrainingError, type Logger, type RunEnd } from './types';

export interface TrainerProcessOptions {
  python: string;
  command: 'train' | 'resume';
  runId: string;
  runDir: string;
  env?: NodeJS.ProcessEnv;
  log?: Logger;
  /** called for every protocol event, after it is persisted */
  onEvent?: (event: TrainerEvent) => void;
  maxLineBytes?: number;
  /** extra args after --run-dir (tests) */
  extraArgs?: string[];
  /** how long the process may take to exit after its `done` event before its tree is killed (default 10 s) */
  postDoneGraceMs?: number;
}

const STDERR_TAIL_LINES = 20;

export class TrainerProcess {
  readonly pid: number;
  readonly startedAt = Date.now();
  /** resolves once the process and its pipes are gone, with how the run ended */
  readonly exited: Promise<RunEnd>;
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly parser: JsonLinesParser;
  private readonly eventsFile: string;
  private readonly traceLog: fs.WriteStream;
  private stderrLines: string[] = [];
  private stderrPartial = '';
  private done?: DoneEvent;
  private error?: ErrorEvent;
  private stopRequestedAt?: number;
  private killedAfterDeadline = false;
  private interrupted = false;
  private exitedFlag = false;
  private started = false;
  /** the trainer refused before starting because another process holds the run (run_in_use): nothing of it is persisted */
  refused = false;
  private readonly postDoneGraceMs: number;

  private constructor(child: ChildProcessWithoutNullStreams, private readonly options: TrainerProcessOptions) {
    this.child = child;
    this.pid = child.pid!;
    this.postDoneGraceMs = options.postDoneGraceMs ?? 10_000;
    this.parser = new JsonLinesParser({ maxLineBytes: options.maxLineBytes });
    this.eventsFile = path.join(options.runDir, 'events.jsonl');
    this.traceLog = fs.createWriteStream(path.join(options.runDir, 'trainer.log'), { flags: 'a' });
    this.traceLog.on('error', () => { /* disk full / folder deleted: the log channel still has it */ });
    this.traceLog.write(`=== ${new Date().toISOString()} ${options.command} pid ${this.pid} python ${options.python}\n`);
    child.stdout.on('data', (chunk: Buffer) => this.handle(this.parser.push(chunk)));
    child.stderr.on('data', (chunk: Buffer) => this.onStderr(chunk.toString('utf8')));
    child.stdin.on('error', () => { /* EPIPE once the trainer is gone */ });
    this.exited = new Promise(resolve => {
      child.on('exit', () => {
        this.exitedFlag = true;
        // orphans (DataLoader workers, torchrun children) would keep our pipes open: kill the rest of the group
        killGroupSync(this.pid);
        setTimeout(() => { child.stdout.destroy(); child.stderr.destroy(); }, 2000).unref();
      });
      child.on('close', (code, signal) => resolve(this.finish(code, signal)));
    });
  }

  /** Spawns the trainer; rejects (with nothing left running) if the interpreter cannot be started. */
  static start(options: TrainerProcessOptions): Promise<TrainerProcess> {
    const args = ['-m', 'bloom_peft', options.command, '--run-dir', options.runDir, ...(options.extraArgs ?? [])];
    const child = spawn(options.python, args, {
      cwd: trainerSourceDir(),
      env: trainerEnv(options.env),
      // own process group: -pid reaches the whole tree; and a Ctrl-C in the CLI's terminal does not hit it
      detached: process.platform !== 'win32',
      stdio: ['pipe', 'pipe', 'pipe'],
      windowsHide: true,
    });
    return new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('spawn', () => {
        child.off('error', reject);
        child.on('error', e => options.log?.error(`trainer process error: ${e.message}`));
        resolve(new TrainerProcess(child, options));
      });
    });
  }

  get running(): boolean {
    return !this.exitedFlag;
  }

  get stopping(): boolean {
    return this.stopRequestedAt !== undefined;
  }

  /** Asks for a graceful stop: the trainer checkpoints and exits with a `done` (status stopped). */
  requestStop(): void {
    this.stopRequestedAt ??= Date.now();
    const msg: TrainerControl = { type: 'stop' };
    if (this.child.stdin.writable) this.child.stdin.write(JSON.stringify(msg) + '\n');
  }

  /** Graceful stop, then SIGKILL of the process group when `deadlineMs` passes. */
  async stop(deadlineMs: number): Promise<RunEnd> {
    this.requestStop();
    const timer = setTimeout(() => {
      if (!this.running) return;
      // after `done` the stop itself succeeded; only the teardown was slow
      this.killedAfterDeadline = !this.done;
      this.options.log?.warn(`trainer did not exit within ${Math.round(deadlineMs / 1000)} s of the stop request: killing its process tree`);
      killGroupSync(this.pid);
    }, deadlineMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Synchronous teardown for deactivate() / process exit: kills the tree now and writes the interruption
   * to the run folder (the run shows as "interrupted — resume" next time).
   */
  killNow(reason: string): void {
    if (!this.running) return;
    this.interrupted = true;
    killGroupSync(this.pid);
    this.appendEvent({ v: 1, type: 'warning', time: Date.now() / 1000, code: 'interrupted', message: `training interrupted: ${reason}; resume continues from the last checkpoint` } as TrainerEvent);
  }

  stderrTail(lines = STDERR_TAIL_LINES): string {
    const all = this.stderrPartial ? [...this.stderrLines, this.stderrPartial] : this.stderrLines;
    return all.slice(-lines).join('\n');
  }

  private handle(lines: ParsedLine[]): void {
    for (const l of lines) {
      if (l.kind === 'junk') {
        this.options.log?.warn(`[trainer stdout, not protocol: ${l.reason}] ${l.text.slice(0, 500)}`);
        this.traceLog.write(`[stdout ${l.reason}] ${l.text.slice(0, 2000)}\n`);
        continue;
      }
      const e = l.event;
      if (e.type === 'started') this.started = true;
      if (e.type === 'error' && e.code === 'run_in_use' && !this.started) {
        // another trainer owns this run: its events.jsonl is not ours to write to
        this.refused = true;
        this.error = e;
        try { this.options.onEvent?.(e); } catch { /* listener errors are the listener's */ }
        continue;
      }
      if (e.type === 'done') {
        this.done = e;
        // nothing more to tell it: EOF lets the trainer's stdin reader end before interpreter shutdown
        this.child.stdin.end();
        // `done` is written after every output (checkpoint, adapter, export): a slow interpreter teardown
        // (DataLoader workers, torch finalizers; seconds on a loaded CPU) must not hold the run open
        setTimeout(() => {
          if (!this.running) return;
          this.options.log?.info(`trainer ${this.pid} still tearing down ${Math.round(this.postDoneGraceMs / 1000)} s after done: ending its process tree`);
          killGroupSync(this.pid);
        }, this.postDoneGraceMs).unref();
      }
      if (e.type === 'error') this.error = e;
      this.appendEvent(e);
      try {
        this.options.onEvent?.(e);
      } catch (err) {
        this.options.log?.error(`event listener failed: ${(err as Error).message}`);
      }
    }
  }

  private appendEvent(e: TrainerEvent): void {
    try {
      fs.appendFileSync(this.eventsFile, JSON.stringify(e) + '\n');
    } catch (err) {
      this.options.log?.error(`cannot write ${this.eventsFile}: ${(err as Error).message}`);
    }
  }

  private onStderr(text: string): void {
    this.traceLog.write(text);
    const parts = (this.stderrPartial + text).split(/\r?\n|\r/);
    this.stderrPartial = parts.pop() ?? '';
    for (const line of parts) {
      if (!line.trim()) continue;
      this.stderrLines.push(line);
      if (this.options.log?.append) this.options.log.append(line + '\n');
      else this.options.log?.trace(line);
    }
    if (this.stderrLines.length > 200) this.stderrLines = this.stderrLines.slice(-STDERR_TAIL_LINES * 2);
  }

  private finish(code: number | null, signal: NodeJS.Signals | null): RunEnd {
    this.handle(this.parser.end());
    if (this.stderrPartial.trim()) { this.stderrLines.push(this.stderrPartial); this.stderrPartial = ''; }
    const stderrTail = this.stderrTail();
    let outcome: RunEnd['outcome'];
    if (this.done) outcome = this.done.status === 'stopped' ? 'stopped' : 'completed';
    else if (this.interrupted) outcome = 'interrupted';
    else if (this.stopRequestedAt !== undefined && !this.error) outcome = 'stopped';
    else outcome = 'failed';
    const status = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    let message: string;
    if (this.refused && this.error) {
      message = this.error.message + (this.error.hint ? ` — ${this.error.hint}` : '');
    } else if (outcome === 'failed' && this.error) {
      message = this.error.message + (this.error.hint ? ` — ${this.error.hint}` : '');
    } else if (outcome === 'failed') {
      message = `The trainer ${status} without reporting an error.` + (stderrTail ? ` Last output:\n${tail(stderrTail, 6)}` : '');
      // persist the reason so the run history shows it after a reload
      this.appendEvent({
        v: 1, type: 'error', time: Date.now() / 1000, code: 'trainer_exited', message,
        hint: /No module named/.test(stderrTail)
          ? 'The trainer\'s Python packages are missing: run "Bloom PEFT: Set Up Training Environment" from the Command Palette.'
          : 'Out of memory or killed from outside? Resume continues from the last checkpoint; "Show Trainer Log" has the full output.',
      } as TrainerEvent);
    } else if (outcome === 'stopped') {
      message = this.killedAfterDeadline ? 'Training stopped (the trainer did not stop in time and was killed).' : 'Training stopped.';
      if (this.killedAfterDeadline) {
        this.appendEvent({ v: 1, type: 'warning', time: Date.now() / 1000, code: 'stop_timeout', message: 'the trainer did not stop within the deadline; its process tree was killed' } as TrainerEvent);
      }
    } else if (outcome === 'interrupted') {
      message = 'Training was interrupted.';
    } else {
      message = 'Training completed.';
    }
    this.traceLog.end(`=== ${new Date().toISOString()} ${status}: ${this.refused ? 'refused (run in use)' : outcome}\n`);
    return {
      runId: this.options.runId, dir: this.options.runDir, outcome, exitCode: code, signal, stderrTail, message,
      error: this.error ? { code: this.error.code, message: this.error.message, hint: this.error.hint } : undefined,
      killedAfterDeadline: this.killedAfterDeadline,
      adapterDir: this.done?.adapter_dir, exportDir: this.done?.export_dir,
    };
  }
}

/** What a run's owner needs to supervise one trainer attempt of a run (the CLI in-process, or run-supervisor.js). */
export interface SuperviseOptions extends Omit<TrainerProcessOptions, 'runDir' | 'runId'> {
  store: RunStore;
  runId: string;
  owner: 'cli' | 'detached';
  /** graceful stop deadline for a stop requested through the stop-requested file */
  stopTimeoutMs: number;
  /** detached supervisor: stop when no VS Code window has followed the run for this long and the last one asked so */
  lastWindowGraceMs?: number;
}

export interface SupervisedRun { proc: TrainerProcess; record: RunRecord; ended: Promise<RunEnd> }

/**
 * Starts the trainer of a run and owns it: writes run.json (trainer pid + start token, owner pid + token), obeys
 * the stop-requested file (the control channel any window or `bloom-peft stop` uses), and records the end.
 * A trainer refused because another process holds the run leaves that run's record as the holder's.
 */
export async function superviseRun(o: SuperviseOptions): Promise<SupervisedRun> {
  const { store, runId: id } = o;
  const dir = store.dir(id);
  const previous = store.readRecord(id);
  const proc = await TrainerProcess.start({ ...o, runId: id, runDir: dir });
  const record: RunRecord = {
    version: 1, id, command: o.command, pid: proc.pid, pidToken: processStartToken(proc.pid), host: os.hostname(),
    ownerPid: process.pid, ownerToken: processStartToken(process.pid), owner: o.owner, startedAt: proc.startedAt,
  };
  store.writeRecord(record);
  const windows = o.lastWindowGraceMs !== undefined ? new LastWindowWatch(path.join(dir, WATCHERS_DIR), o.lastWindowGraceMs) : undefined;
  const timer = setInterval(() => {
    if (!proc.running || proc.stopping) return;
    if (store.stopRequested(id)) {
      o.log?.info(`stop requested for ${id} (stop-requested file)`);
      void proc.stop(o.stopTimeoutMs);
    } else if (windows?.lastWindowGone()) {
      o.log?.info(`the last VS Code window following ${id} closed and asked to stop its runs: stopping`);
      store.markStopRequested(id);
      void proc.stop(o.stopTimeoutMs);
    }
  }, 500);
  const ended = proc.exited.then(end => {
    clearInterval(timer);
    try {
      if (proc.refused) restoreHolderRecord(store, id, proc.pid, previous);
      else store.writeRecord({ ...record, endedAt: Date.now(), exitCode: end.exitCode, signal: end.signal, outcome: end.outcome, ...(end.error ? { error: end.error } : {}) });
    } catch { /* the run folder was deleted meanwhile */ }
    return end;
  });
  return { proc, record, ended };
}

/** After a run_in_use refusal: run.json names the process that holds the run again (we overwrote it at spawn). */
function restoreHolderRecord(store: RunStore, id: string, ourPid: number, previous: RunRecord | undefined): void {
  const now = store.readRecord(id);
  if (now && now.pid !== ourPid) return; // someone wrote a newer record meanwhile
  const h = store.lockHolder(id);
  if (h && previous) {
    store.writeRecord({
      ...previous, command: h.command === 'resume' ? 'resume' : 'train', pid: h.pid, pidToken: h.token ?? undefined,
      ownerPid: h.parent_pid ?? previous.ownerPid, ownerToken: h.parent_token ?? undefined,
      startedAt: h.time ? h.time * 1000 : previous.startedAt, endedAt: undefined, exitCode: undefined, signal: undefined, outcome: undefined,
    });
  } else if (previous) {
    store.writeRecord(previous);
  }
}

/** One lease file per VS Code extension host following a run: `watchers/<pid>.json` = {pid, token, stopWhenClosed}. */
export interface WatcherLease { pid: number; token?: string; stopWhenClosed: boolean }

/**
 * "Stop my runs when the last window closes" (bloomPeft.stopTrainingWhenWindowsClose): true once no live window has
 * held a lease for `graceMs` and the last live ones asked for it. The grace covers a window reload (the old
 * extension host ends, the new one activates on startup-finished, re-attaches and writes its lease).
 */
export class LastWindowWatch {
  private policy = false;
  private noneSince: number | undefined;
  constructor(private readonly dir: string, private readonly graceMs: number) {}

  lastWindowGone(now = Date.now()): boolean {
    const live: WatcherLease[] = [];
    for (const name of safeReaddir(this.dir)) {
      const file = path.join(this.dir, name);
      let lease: WatcherLease;
      try { lease = JSON.parse(fs.readFileSync(file, 'utf8')); } catch { continue; }
      if (typeof lease?.pid === 'number' && isSameProcessAlive(lease.pid, lease.token) && lease.token) live.push(lease);
      else fs.rmSync(file, { force: true });
    }
    if (live.length) {
      this.policy = live.some(l => l.stopWhenClosed);
      this.noneSince = undefined;
      return false;
    }
    if (!this.policy) return false;
    this.noneSince ??= now;
    return now - this.noneSince >= this.graceMs;
  }
}

export function writeWatcherLease(runDir: string, stopWhenClosed: boolean): string | undefined {
  const token = processStartToken(process.pid);
  if (!token) return undefined;
  const dir = path.join(runDir, WATCHERS_DIR);
  const file = path.join(dir, `${process.pid}.json`);
  try {
    fs.mkdirSync(dir, { recursive: true });
    writeJsonAtomic(file, { pid: process.pid, token, stopWhenClosed } satisfies WatcherLease);
    return file;
  } catch {
    return undefined;
  }
}

/**
 * Stops a trainer this process does not own, by pid, only once `verifyProcess` confirms the pid is the run's trainer
 * (token + command line): SIGTERM (the trainer stops like on a stop request), then SIGKILL of its group.
 */
export async function stopVerified(pid: number, token: string | undefined, runDir: string, deadlineMs: number): Promise<'stopped' | 'killed'> {
  const expected = ['bloom_peft', runDir];
  const v = verifyProcess(pid, token, expected);
  if (!v.ok) throw new TrainingError('unverified_process', `not signalling pid ${pid} for ${runDir}: ${v.reason}`,
    'run.json must name the trainer with its process identity token; stop the process yourself if it is yours.');
  try { process.kill(pid, 'SIGTERM'); } catch { return 'stopped'; }
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (!isSameProcessAlive(pid, token)) return 'stopped';
    await new Promise(r => setTimeout(r, 100));
  }
  if (verifyProcess(pid, token, expected).ok) killGroupSync(pid);
  return 'killed';
}

function safeReaddir(dir: string): string[] {
  try { return fs.readdirSync(dir); } catch { return []; }
}
