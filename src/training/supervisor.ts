// One supervised trainer process: `<python> -m bloom_peft train|resume --run-dir DIR`, leader of its own
// process group. Parses the protocol stream, persists every event to events.jsonl, copies stderr to the
// log and trainer.log, stops gracefully over stdin with a deadline and then kills the whole tree.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { DoneEvent, ErrorEvent, TrainerControl, TrainerEvent } from '../protocol';
import { JsonLinesParser, type ParsedLine } from './jsonLines';
import { trainerSourceDir } from './paths';
import { killGroupSync } from './processes';
import { tail, trainerEnv } from './python';
import type { Logger, RunEnd } from './types';

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
    if (outcome === 'failed' && this.error) {
      message = this.error.message + (this.error.hint ? ` — ${this.error.hint}` : '');
    } else if (outcome === 'failed') {
      message = `The trainer ${status} without reporting an error.` + (stderrTail ? ` Last output:\n${tail(stderrTail, 6)}` : '');
      // persist the reason so the run history shows it after a reload
      this.appendEvent({
        v: 1, type: 'error', time: Date.now() / 1000, code: 'trainer_exited', message,
        hint: /No module named/.test(stderrTail)
          ? 'The trainer\'s Python packages are missing: run "Bloom PEFT: Set Up Training Environment" (or `npm run setup` for the CLI).'
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
    this.traceLog.end(`=== ${new Date().toISOString()} ${status}: ${outcome}\n`);
    return {
      runId: this.options.runId, dir: this.options.runDir, outcome, exitCode: code, signal, stderrTail, message,
      error: this.error ? { code: this.error.code, message: this.error.message, hint: this.error.hint } : undefined,
      killedAfterDeadline: this.killedAfterDeadline,
      adapterDir: this.done?.adapter_dir, exportDir: this.done?.export_dir,
    };
  }
}

/** Stops a trainer this process does not own (another window, a CLI run): SIGTERM, then SIGKILL of the group. */
export async function stopForeign(pid: number, deadlineMs: number, isAlive: () => boolean): Promise<'stopped' | 'killed'> {
  // the leader only: it handles SIGTERM like a stop request and ends its own workers
  try { process.kill(pid, 'SIGTERM'); } catch { return 'stopped'; }
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (!isAlive()) return 'stopped';
    await new Promise(r => setTimeout(r, 100));
  }
  killGroupSync(pid);
  return 'killed';
}
