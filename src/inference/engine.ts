// Host side of the completion engine. CompletionEngine is the public API; each EngineProcess owns one child process
// (worker.ts) serving one export. A process of its own, not a thread of the extension host: a native crash of
// onnxruntime (or the OOM killer) ends it, not the host (docs/engine.md, "Process"). A reload starts a new process next to the old one, switches new requests to it once it is ready, and lets
// the old one answer what it already had before it exits: no request is lost, and onnxruntime's native memory goes
// away with the old process. A process that dies is replaced at once.
import './telemetry'; // before anything can load onnxruntime-node (the engine process inherits the setting)
import { type ChildProcess, fork } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { GraphOptimization } from './decoder';
import { EngineError, toEngineError } from './errors';
import type { ExportManifest } from './manifest';
import { resolveExportDir } from './manifest';
import type { EngineInfo, GenerateParams, GenerateResult, HostToWorker, WorkerInit, WorkerToHost } from './messages';

export interface EngineOptions {
  /** onnxruntime intra-op threads in the engine process (default: defaultThreads in decoder.ts: half the cores, 2 on a 2-core machine, at most 4). */
  threads?: number;
  /** onnxruntime graph optimization level (default 'all': fastest decode, slower load). */
  optimization?: GraphOptimization;
  /** The engine process's script; default: dist/inference-worker.js next to the bundle, or worker.ts under tsx. */
  workerEntry?: string;
}

export interface GenerateOptions extends Partial<GenerateParams> {
  signal?: AbortSignal;
  /** Called with each new piece of text as it is generated (stop sequences never leak into it). */
  onToken?: (text: string) => void;
}

export const DEFAULT_MAX_TOKENS = 64;

export class CompletionEngine {
  private swapping: Promise<unknown> = Promise.resolve();
  private disposed = false;

  private constructor(
    private readonly opts: EngineOptions,
    /** Processes still loading (a reload, a replacement): dispose() ends them too. */
    private readonly starting: Set<ChildProcess>,
    private current: EngineProcess,
  ) {}

  /** Loads an export folder (or a run folder with export/ inside) in a fresh engine process. */
  static async load(exportDir: string, opts: EngineOptions = {}): Promise<CompletionEngine> {
    const starting = new Set<ChildProcess>();
    // the first process's crash handler reports to the engine, which is made once that process is up
    let engine: CompletionEngine | undefined;
    const first = await EngineProcess.start(resolveExportDir(exportDir), opts, { starting, onCrash: conn => engine?.onCrash(conn) });
    engine = new CompletionEngine(opts, starting, first);
    return engine;
  }

  get manifest(): ExportManifest {
    return this.current.manifest;
  }

  get info(): EngineInfo {
    return this.current.info;
  }

  get exportDir(): string {
    return this.current.exportDir;
  }

  /** Completes `prompt` (raw text: build instruction prompts with formatPrompt()). */
  async generate(prompt: string, opts: GenerateOptions = {}): Promise<GenerateResult> {
    const { signal, onToken, ...rest } = opts;
    const params: GenerateParams = { ...rest, maxTokens: rest.maxTokens ?? DEFAULT_MAX_TOKENS };
    const msg = { type: 'generate' as const, prompt, params, stream: !!onToken };
    return this.call(conn => conn.request<GenerateResult>(msg, { signal, onToken }));
  }

  /** Last-position logits of `prompt` from a cold run (no cache), with the prompt's token ids. */
  async logits(prompt: string): Promise<{ logits: Float32Array; ids: number[] }> {
    return this.call(conn => conn.request({ type: 'logits', prompt }, {}));
  }

  async tokenize(text: string): Promise<number[]> {
    return this.call(conn => conn.request({ type: 'tokenize', text }, {}));
  }

  /** Forgets the KV of the previous prompt (the prefix KV of prompt-learning exports stays). */
  async resetCache(): Promise<void> {
    await this.call(conn => conn.request({ type: 'resetCache' }, {}));
  }

  /**
   * Switches to another export. Requests made before the new process is ready are answered by the old
   * one; later ones by the new one. If the new export fails to load, the old one keeps serving and
   * the error is thrown.
   */
  reload(exportDir: string): Promise<void> {
    const run = this.swapping.then(async () => {
      this.throwIfDisposed();
      const next = await this.start(resolveExportDir(exportDir));
      if (this.disposed) {
        await next.close('abort');
        this.throwIfDisposed();
      }
      const old = this.current;
      this.current = next;
      await old.close('drain');
    });
    this.swapping = run.catch(() => {});
    return run;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (const child of this.starting) child.kill('SIGKILL');
    await this.current.close('abort');
    await this.swapping; // a reload or replacement in flight closes what it started
  }

  private throwIfDisposed(): void {
    if (this.disposed) throw new EngineError('DISPOSED', 'the completion engine was disposed');
  }

  private async start(exportDir: string): Promise<EngineProcess> {
    try {
      return await EngineProcess.start(exportDir, this.opts, { starting: this.starting, onCrash: conn => this.onCrash(conn) });
    } catch (e) {
      this.throwIfDisposed(); // dispose() ended the load: say so, not that the process died
      throw e;
    }
  }

  /** Runs a request on the current process; one that died is replaced (same export). */
  private async call<T>(fn: (conn: EngineProcess) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      this.throwIfDisposed();
      const conn = this.current;
      if (conn.crashed) {
        await this.replaceCrashed(conn);
        continue;
      }
      try {
        return await fn(conn);
      } catch (e) {
        if (e instanceof NotStartedError && attempt < 2) continue; // never reached the process: retry
        throw e;
      }
    }
  }

  /** A process died: start its replacement now, so the next request does not wait for the load. */
  private onCrash(conn: EngineProcess): void {
    if (this.current === conn && !this.disposed) void this.replaceCrashed(conn).catch(() => {});
  }

  private async replaceCrashed(conn: EngineProcess): Promise<void> {
    const run = this.swapping.then(async () => {
      if (this.current !== conn || this.disposed) return; // already replaced, or no longer wanted
      const next = await this.start(conn.exportDir);
      if (this.disposed) await next.close('abort');
      else this.current = next;
    });
    this.swapping = run.catch(() => {});
    await run;
  }
}

/** Thrown for requests that were still queued when their process died: safe to send elsewhere. */
class NotStartedError extends EngineError {}

interface Job {
  id: number;
  msg: HostToWorker;
  resolve(v: unknown): void;
  reject(e: Error): void;
  onToken?: (text: string) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
  queuedAt: number;
  startedAt?: number;
  /** onToken threw: the request is stopped and fails with this. */
  callbackError?: Error;
}

type Outgoing = HostToWorker extends infer M ? (M extends { id: number } ? Omit<M, 'id'> : never) : never;

let nextRequestId = 1;

/**
 * The engine process's environment: the host's, with ELECTRON_RUN_AS_NODE: in VS Code process.execPath is Electron,
 * which this makes run as node (as VS Code's own language servers do). No huge-page tunable: measured, it took ~4% off
 * an int8 decode step and doubled the load (docs/engine.md, "Huge pages: measured, not taken").
 */
export function engineEnv(base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...base, ELECTRON_RUN_AS_NODE: '1' };
}

/** The last lines the engine process wrote (onnxruntime's own messages, a native crash's): named in crash errors. */
class OutputTail {
  private text = '';

  constructor(child: ChildProcess) {
    for (const stream of [child.stdout, child.stderr]) {
      stream?.on('data', (chunk: Buffer) => {
        process.stderr.write(chunk);
        this.text = (this.text + chunk.toString('utf8')).slice(-2000);
      });
    }
  }

  /** ": <last lines>", or '' when the process wrote nothing. */
  suffix(): string {
    const lines = this.text.trim().split('\n').slice(-5).join(' | ');
    return lines ? `; its last output: ${lines.slice(-600)}` : '';
  }
}

const ended = (code: number | null, signal: NodeJS.Signals | null): string =>
  signal ? `was killed by ${signal}` : `exited with code ${code}`;

/** One engine process, one export, one request at a time (FIFO). */
class EngineProcess {
  crashed = false;
  private closing: Promise<void> | null = null;
  /** The host asked the process to end (close or kill): its exit is not a crash. */
  private ending = false;
  private readonly queue: Job[] = [];
  private active: Job | null = null;
  private readonly exited: Promise<void>;
  private drained: (() => void) | null = null;

  private constructor(
    private readonly child: ChildProcess,
    private readonly output: OutputTail,
    readonly manifest: ExportManifest,
    readonly info: EngineInfo,
    readonly exportDir: string,
    private readonly onCrashed: (conn: EngineProcess) => void,
  ) {
    child.on('message', (m: WorkerToHost) => this.onMessage(m));
    // 'close' comes after the process exited and its IPC channel and output were read to the end: no answer it sent
    // is still in flight.
    this.exited = new Promise(resolve => {
      child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        resolve();
        if (!this.ending) this.onCrash(`the engine process (pid ${child.pid}) ${ended(code, signal)}${this.output.suffix()}`);
      });
    });
  }

  static start(exportDir: string, opts: EngineOptions, hooks: { starting: Set<ChildProcess>; onCrash(conn: EngineProcess): void }): Promise<EngineProcess> {
    const init: WorkerInit = { exportDir, threads: opts.threads, optimization: opts.optimization };
    const entry = engineEntry(opts.workerEntry);
    const child = fork(entry.file, [JSON.stringify(init)], {
      execArgv: entry.execArgv, // never the host's own flags (a test runner's --test, an inspector port)
      env: engineEnv(process.env),
      serialization: 'advanced', // logits cross as a Float32Array
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    // A failed spawn or send is reported here (and as 'close'); unhandled, it would throw in the host.
    child.on('error', () => {});
    hooks.starting.add(child);
    const output = new OutputTail(child);
    return new Promise<EngineProcess>((resolve, reject) => {
      const fail = (err: EngineError) => {
        cleanup();
        child.kill('SIGKILL');
        reject(err);
      };
      const onMessage = (m: WorkerToHost) => {
        if (m.type === 'ready') {
          cleanup();
          resolve(new EngineProcess(child, output, m.manifest, m.info, exportDir, hooks.onCrash));
        } else if (m.type === 'loadError') fail(toEngineError(m.error));
      };
      const onError = (e: Error) => fail(new EngineError('ENGINE_CRASHED', `the engine process could not start for ${exportDir}: ${e.message}`, { path: exportDir }));
      const onClose = (code: number | null, signal: NodeJS.Signals | null) =>
        fail(new EngineError('ENGINE_CRASHED', `the engine process (pid ${child.pid}) ${ended(code, signal)} while loading ${exportDir}${output.suffix()}`, { path: exportDir }));
      const cleanup = () => {
        hooks.starting.delete(child);
        child.off('message', onMessage);
        child.off('error', onError);
        child.off('close', onClose);
      };
      child.on('message', onMessage);
      child.on('error', onError);
      child.on('close', onClose);
    });
  }

  request<T>(msg: Outgoing, opts: { signal?: AbortSignal; onToken?: (text: string) => void }): Promise<T> {
    if (this.crashed) return Promise.reject(new NotStartedError('ENGINE_CRASHED', 'the engine process is gone'));
    if (this.closing) return Promise.reject(new NotStartedError('DISPOSED', 'this engine process is closing'));
    return new Promise<T>((resolve, reject) => {
      const id = nextRequestId++;
      const job: Job = { id, msg: { ...msg, id } as HostToWorker, resolve: resolve as (v: unknown) => void, reject, onToken: opts.onToken, signal: opts.signal, queuedAt: performance.now() };
      if (opts.signal) {
        if (opts.signal.aborted) {
          const v = abortedBeforeStart(msg, 0);
          return v instanceof Error ? reject(v) : resolve(v as T);
        }
        job.onAbort = () => this.abort(job);
        opts.signal.addEventListener('abort', job.onAbort, { once: true });
      }
      this.queue.push(job);
      this.pump();
    });
  }

  /** 'drain': finish queued work, then exit. 'abort': stop the active request, reject the queue. */
  close(mode: 'drain' | 'abort'): Promise<void> {
    if (!this.closing) {
      this.closing = (async () => {
        if (mode === 'abort') {
          for (const job of this.queue.splice(0)) this.settle(job, new EngineError('DISPOSED', 'the completion engine was disposed'));
          if (this.active) this.send({ type: 'abort', id: this.active.id });
        }
        while (this.active || this.queue.length) await new Promise<void>(r => (this.drained = r));
        this.ending = true;
        if (!this.crashed) {
          // The process releases its session, says 'closed' and exits; a stuck one is killed.
          this.send({ type: 'close' });
          await Promise.race([this.exited, delay(5000)]);
        }
        this.child.kill('SIGKILL');
        await this.exited;
      })();
    }
    return this.closing;
  }

  private send(msg: HostToWorker): void {
    // A process that is gone reports through 'close'; the send's own error adds nothing.
    this.child.send(msg, () => {});
  }

  private pump(): void {
    if (this.active || this.crashed) return;
    const job = this.queue.shift();
    if (!job) {
      this.drained?.();
      return;
    }
    this.active = job;
    job.startedAt = performance.now();
    this.send(job.msg);
  }

  private abort(job: Job): void {
    const i = this.queue.indexOf(job);
    if (i >= 0) {
      this.queue.splice(i, 1);
      this.settle(job, abortedBeforeStart(job.msg, performance.now() - job.queuedAt));
    } else if (this.active === job) {
      // The process reads it between model steps and stops before the next one.
      this.send({ type: 'abort', id: job.id });
    }
  }

  private onMessage(m: WorkerToHost): void {
    if (m.type === 'ready' || m.type === 'loadError' || m.type === 'closed') return;
    const job = this.active;
    if (!job || job.id !== m.id) return;
    switch (m.type) {
      case 'token':
        if (job.signal?.aborted || job.callbackError) return;
        try {
          job.onToken?.(m.text);
        } catch (e) {
          // A throwing consumer must not take the host down: stop the request and report its error.
          job.callbackError = e instanceof Error ? e : new Error(String(e));
          this.send({ type: 'abort', id: job.id });
        }
        return;
      case 'result':
        m.result.timings.queuedMs = (job.startedAt ?? job.queuedAt) - job.queuedAt;
        this.finish(job, job.callbackError ?? m.result);
        return;
      case 'logits':
        this.finish(job, { logits: m.logits, ids: m.ids });
        return;
      case 'tokens':
        this.finish(job, m.ids);
        return;
      case 'done':
        this.finish(job, undefined);
        return;
      case 'error':
        this.finish(job, toEngineError(m.error));
        return;
    }
  }

  private finish(job: Job, value: unknown): void {
    this.active = null;
    this.settle(job, value);
    this.pump();
  }

  private settle(job: Job, value: unknown): void {
    if (job.onAbort) job.signal?.removeEventListener('abort', job.onAbort);
    if (value instanceof Error) job.reject(value);
    else job.resolve(value);
  }

  private onCrash(why: string): void {
    if (this.crashed) return;
    this.crashed = true;
    const active = this.active;
    if (active) {
      const during = `${why} while answering a ${active.msg.type} request; a new engine process is starting for the next request`;
      this.settle(active, new EngineError('ENGINE_CRASHED', during, { path: this.exportDir }));
    }
    this.active = null;
    for (const job of this.queue.splice(0)) this.settle(job, new NotStartedError('ENGINE_CRASHED', why));
    this.drained?.();
    this.onCrashed(this);
  }
}

function abortedBeforeStart(msg: { type: string }, queuedMs: number): unknown {
  if (msg.type !== 'generate') return new EngineError('BAD_REQUEST', `${msg.type} request aborted`);
  const result: GenerateResult = {
    text: '',
    tokens: [],
    finishReason: 'aborted',
    timings: { prefillMs: 0, decodeMs: 0, reusedTokens: 0, promptTokens: 0, generatedTokens: 0, queuedMs },
  };
  return result;
}

const delay = (ms: number) => new Promise<void>(r => setTimeout(r, ms).unref());

/**
 * The bundled extension/CLI finds dist/inference-worker.js beside itself. Running from sources (tests under tsx),
 * the entry is worker.ts, started with tsx's require hook.
 */
function engineEntry(explicit?: string): { file: string; execArgv: string[] } {
  const file = explicit ?? [path.join(__dirname, 'inference-worker.js'), path.join(__dirname, 'worker.ts')].find(f => fs.existsSync(f));
  if (!file) throw new EngineError('ENGINE_CRASHED', `the engine process's script is not next to ${__dirname}`, { hint: 'run `npm run build` (it writes dist/inference-worker.js)' });
  if (!file.endsWith('.ts')) return { file, execArgv: [] };
  // createRequire: keeps esbuild from trying to resolve tsx, which the bundles never need.
  const tsx = createRequire(__filename).resolve('tsx/cjs');
  return { file, execArgv: ['--require', tsx] };
}
