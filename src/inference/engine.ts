// Host side of the completion engine. CompletionEngine is the public API; each WorkerConnection owns
// one worker thread serving one export. A reload starts a new worker next to the old one, switches new
// requests to it once it is ready, and lets the old one answer what it already had before it exits:
// no request is lost, and onnxruntime's native memory goes away with the old thread.
import './telemetry'; // before anything can load onnxruntime-node
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { GraphOptimization } from './decoder';
import { EngineError, toEngineError } from './errors';
import type { ExportManifest } from './manifest';
import { resolveExportDir } from './manifest';
import {
  ABORT_SLOT,
  type EngineInfo,
  type GenerateParams,
  type GenerateResult,
  type HostToWorker,
  type WorkerInit,
  type WorkerToHost,
} from './messages';

export interface EngineOptions {
  /** onnxruntime intra-op threads in the worker (default: half the cores, 1..4). */
  threads?: number;
  /** onnxruntime graph optimization level (default 'all': fastest decode, slower load). */
  optimization?: GraphOptimization;
  /** Worker script; default: dist/inference-worker.js next to the bundle, or worker.ts under tsx. */
  workerEntry?: string;
}

export interface GenerateOptions extends Partial<GenerateParams> {
  signal?: AbortSignal;
  /** Called with each new piece of text as it is generated (stop sequences never leak into it). */
  onToken?: (text: string) => void;
}

export const DEFAULT_MAX_TOKENS = 64;

export class CompletionEngine {
  private current: WorkerConnection;
  private swapping: Promise<unknown> = Promise.resolve();
  private disposed = false;

  private constructor(first: WorkerConnection, private readonly opts: EngineOptions) {
    this.current = first;
  }

  /** Loads an export folder (or a run folder with export/ inside) in a fresh worker. */
  static async load(exportDir: string, opts: EngineOptions = {}): Promise<CompletionEngine> {
    return new CompletionEngine(await WorkerConnection.start(resolveExportDir(exportDir), opts), opts);
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
   * Switches to another export. Requests made before the new worker is ready are answered by the old
   * one; later ones by the new one. If the new export fails to load, the old one keeps serving and
   * the error is thrown.
   */
  reload(exportDir: string): Promise<void> {
    const run = this.swapping.then(async () => {
      if (this.disposed) throw new EngineError('DISPOSED', 'the completion engine was disposed');
      const next = await WorkerConnection.start(resolveExportDir(exportDir), this.opts);
      if (this.disposed) {
        await next.close('abort');
        throw new EngineError('DISPOSED', 'the completion engine was disposed');
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
    await this.current.close('abort');
  }

  /** Runs a request on the current worker; a crashed worker is replaced once (same export). */
  private async call<T>(fn: (conn: WorkerConnection) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      if (this.disposed) throw new EngineError('DISPOSED', 'the completion engine was disposed');
      const conn = this.current;
      if (conn.crashed) {
        await this.replaceCrashed(conn);
        continue;
      }
      try {
        return await fn(conn);
      } catch (e) {
        if (e instanceof NotStartedError && attempt < 2) continue; // never reached the worker: retry
        throw e;
      }
    }
  }

  private async replaceCrashed(conn: WorkerConnection): Promise<void> {
    const run = this.swapping.then(async () => {
      if (this.current !== conn) return; // someone already replaced it
      this.current = await WorkerConnection.start(conn.exportDir, this.opts);
    });
    this.swapping = run.catch(() => {});
    await run;
  }
}

/** Thrown for requests that were still queued when their worker died: safe to send elsewhere. */
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

/** One worker thread, one export, one request at a time (FIFO). */
class WorkerConnection {
  crashed = false;
  private closing: Promise<void> | null = null;
  private readonly queue: Job[] = [];
  private active: Job | null = null;
  private readonly abortView: Int32Array;
  private exited: Promise<void>;

  private constructor(
    private readonly worker: Worker,
    abortFlag: SharedArrayBuffer,
    readonly manifest: ExportManifest,
    readonly info: EngineInfo,
    readonly exportDir: string,
  ) {
    this.abortView = new Int32Array(abortFlag);
    worker.on('message', (m: WorkerToHost) => this.onMessage(m));
    this.exited = new Promise(resolve => worker.once('exit', () => resolve()));
    worker.on('error', e => this.onCrash(`the inference worker failed: ${e.message}`));
    worker.on('exit', code => {
      if (!this.closing) this.onCrash(`the inference worker exited unexpectedly (code ${code})`);
    });
  }

  static start(exportDir: string, opts: EngineOptions): Promise<WorkerConnection> {
    const abortFlag = new SharedArrayBuffer(4);
    const init: WorkerInit = { exportDir, threads: opts.threads, optimization: opts.optimization, abortFlag };
    const entry = workerEntry(opts.workerEntry);
    const worker = new Worker(entry.file, { workerData: init, execArgv: entry.execArgv, stdout: false, stderr: false });
    return new Promise<WorkerConnection>((resolve, reject) => {
      const fail = (err: EngineError) => {
        cleanup();
        void worker.terminate();
        reject(err);
      };
      const onMessage = (m: WorkerToHost) => {
        if (m.type === 'ready') {
          cleanup();
          resolve(new WorkerConnection(worker, abortFlag, m.manifest, m.info, exportDir));
        } else if (m.type === 'loadError') fail(toEngineError(m.error));
      };
      const onError = (e: Error) => fail(new EngineError('WORKER_CRASHED', `the inference worker failed while loading ${exportDir}: ${e.message}`, { path: exportDir }));
      const onExit = (code: number) => fail(new EngineError('WORKER_CRASHED', `the inference worker exited (code ${code}) while loading ${exportDir}`, { path: exportDir }));
      const cleanup = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
  }

  request<T>(msg: Outgoing, opts: { signal?: AbortSignal; onToken?: (text: string) => void }): Promise<T> {
    if (this.crashed) return Promise.reject(new NotStartedError('WORKER_CRASHED', 'the inference worker is gone'));
    if (this.closing) return Promise.reject(new NotStartedError('DISPOSED', 'this worker is closing'));
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
          if (this.active) Atomics.store(this.abortView, ABORT_SLOT, this.active.id);
        }
        while (this.active || this.queue.length) await new Promise<void>(r => (this.drained = r));
        if (!this.crashed) {
          this.worker.postMessage({ type: 'close' } satisfies HostToWorker);
          // The worker releases its session and says 'closed'; terminate() also covers a stuck one.
          await Promise.race([new Promise<void>(r => (this.closedAck = r)), this.exited, delay(5000)]);
        }
        await this.worker.terminate();
        await this.exited;
      })();
    }
    return this.closing;
  }

  private drained: (() => void) | null = null;
  private closedAck: (() => void) | null = null;

  private pump(): void {
    if (this.active || this.crashed) return;
    const job = this.queue.shift();
    if (!job) {
      this.drained?.();
      return;
    }
    this.active = job;
    job.startedAt = performance.now();
    this.worker.postMessage(job.msg);
  }

  private abort(job: Job): void {
    const i = this.queue.indexOf(job);
    if (i >= 0) {
      this.queue.splice(i, 1);
      this.settle(job, abortedBeforeStart(job.msg, performance.now() - job.queuedAt));
    } else if (this.active === job) {
      // The worker polls this between model steps.
      Atomics.store(this.abortView, ABORT_SLOT, job.id);
    }
  }

  private onMessage(m: WorkerToHost): void {
    if (m.type === 'closed') {
      this.closedAck?.();
      return;
    }
    if (m.type === 'ready' || m.type === 'loadError') return;
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
          Atomics.store(this.abortView, ABORT_SLOT, job.id);
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
    if (this.active) this.settle(this.active, new EngineError('WORKER_CRASHED', why, { path: this.exportDir }));
    this.active = null;
    for (const job of this.queue.splice(0)) this.settle(job, new NotStartedError('WORKER_CRASHED', why));
    this.drained?.();
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
 * The bundled extension/CLI finds dist/inference-worker.js beside itself. Running from sources (tests
 * under tsx), the worker is worker.ts and needs tsx's loader in the worker too.
 */
function workerEntry(explicit?: string): { file: string; execArgv?: string[] } {
  const file = explicit ?? [path.join(__dirname, 'inference-worker.js'), path.join(__dirname, 'worker.ts')].find(f => fs.existsSync(f));
  if (!file) throw new EngineError('WORKER_CRASHED', `inference worker script not found next to ${__dirname}`, { hint: 'run `npm run build` (it writes dist/inference-worker.js)' });
  if (!file.endsWith('.ts')) return { file };
  // Node 20 workers ignore tsx's --import hooks for the main script; the CJS require hook works.
  // (createRequire: keeps esbuild from trying to resolve tsx, which the bundles never need.)
  const tsx = createRequire(__filename).resolve('tsx/cjs');
  return { file, execArgv: ['--require', tsx, ...process.execArgv.filter(a => a === '--expose-gc')] };
}
