// The resident query service: one long-lived `python -m bloom_peft serve` per window answers params, preview and
// check as JSON lines (schemas/queries.schema.json), so a form edit costs an answer, not a Python start that
// imports torch (11-20 s on a loaded machine). Started by the first query, restarted when it dies or when the
// interpreter changes, stopped when idle and on dispose. No vscode import.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import readline from 'node:readline';
import type { QueryRequest } from '../protocol/generated/queries';
import { trainerSourceDir } from './paths';
import { tail, trainerEnv } from './python';
import { TrainingError, type Logger } from './types';

export type QueryCommand = 'params' | 'preview' | 'check';

export interface QueryPayload {
  config?: unknown;
  rows?: number;
}

export interface QueryServiceOptions {
  /** The interpreter the next query should use; read on every query (a change restarts the process). */
  python: () => Promise<string>;
  env?: NodeJS.ProcessEnv;
  /** Stop the process after this long without a query (default 5 minutes); the next query starts it again. */
  idleMs?: number;
  /** Longest wait for one answer, start included (default 3 minutes: the first answer imports torch). */
  timeoutMs?: number;
  log?: Logger;
}

interface QueryError { code?: string; message?: string; hint?: string | null; field?: string | null; file?: string | null; line?: number | null }

interface Pending {
  command: QueryCommand;
  line: string;
  retried: boolean;
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

interface Server {
  child: ChildProcessWithoutNullStreams;
  python: string;
  pending: Map<number, Pending>;
  stderr: string[];
}

const SETUP_HINT = 'Set bloomPeft.pythonPath, or run "Bloom PEFT: Set Up Training Environment".';

export class QueryService {
  private server: Server | undefined;
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | undefined;
  private disposed = false;
  private readonly log?: Logger;

  constructor(private readonly options: QueryServiceOptions) {
    this.log = options.log;
  }

  /** The pid of the running service process, if one runs. */
  get pid(): number | undefined {
    return this.server?.child.pid;
  }

  /** The command's answer (what `python -m bloom_peft <command>` prints), or a TrainingError with its code and hint. */
  async request<T>(command: QueryCommand, payload: QueryPayload = {}): Promise<T> {
    if (this.disposed) throw new TrainingError('disposed', 'the query service was shut down');
    const python = await this.options.python();
    if (this.disposed) throw new TrainingError('disposed', 'the query service was shut down');
    if (this.server && this.server.python !== python) this.stop(`the Python changed to ${python}`);
    clearTimeout(this.idleTimer);
    const id = this.nextId++;
    const request: QueryRequest = { id, command, ...payload } as QueryRequest;
    const line = JSON.stringify(request) + '\n';
    return new Promise<T>((resolve, reject) => {
      const timeoutMs = this.options.timeoutMs ?? 180_000;
      const pending: Pending = {
        command, line, retried: false, resolve: resolve as (v: unknown) => void, reject,
        timer: setTimeout(() => {
          this.server?.pending.delete(id);
          reject(new TrainingError('trainer_failed', `python -m bloom_peft serve gave no ${command} answer within ${Math.round(timeoutMs / 1000)} s`, 'See the Bloom PEFT log for its output.'));
          this.stop('an answer timed out');
        }, timeoutMs),
      };
      this.send(python, id, pending);
    }).finally(() => this.armIdle());
  }

  /** Ends the process (pending queries fail with 'disposed'); later queries are refused. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    clearTimeout(this.idleTimer);
    this.stop('the window closed');
  }

  private send(python: string, id: number, pending: Pending): void {
    const server = this.server ?? this.start(python);
    server.pending.set(id, pending);
    server.child.stdin.write(pending.line);
  }

  private start(python: string): Server {
    const child = spawn(python, ['-m', 'bloom_peft', 'serve'], {
      cwd: trainerSourceDir(), env: trainerEnv(this.options.env), stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true,
    });
    const server: Server = { child, python, pending: new Map(), stderr: [] };
    this.server = server;
    this.log?.info(`query service: started ${python} -m bloom_peft serve (pid ${child.pid})`);
    child.stdin.on('error', () => { /* the process is gone; 'exit' settles the queries */ });
    readline.createInterface({ input: child.stdout }).on('line', text => this.answer(server, text));
    readline.createInterface({ input: child.stderr }).on('line', text => {
      server.stderr.push(text);
      if (server.stderr.length > 50) server.stderr.shift();
      this.log?.trace(`[serve] ${text}`);
    });
    child.on('error', e => this.ended(server, new TrainingError('python_missing', `cannot run Python "${python}": ${e.message}`, SETUP_HINT), false));
    child.on('exit', (code, signal) => {
      const status = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      const stderr = server.stderr.join('\n');
      const missing = /ModuleNotFoundError|ImportError|No module named/.test(stderr);
      this.ended(server, new TrainingError(missing ? 'environment' : 'trainer_failed', `python -m bloom_peft serve ${status}: ${tail(stderr, 5) || '(no output)'}`,
        missing ? 'The trainer\'s packages are missing: run "Bloom PEFT: Set Up Training Environment" from the Command Palette.' : undefined), !missing && code !== 0);
    });
    return server;
  }

  private answer(server: Server, text: string): void {
    let reply: { id?: number | null; result?: unknown; error?: QueryError };
    try {
      reply = JSON.parse(text);
    } catch {
      this.log?.trace(`[serve] not an answer: ${text.slice(0, 200)}`);
      return;
    }
    const pending = typeof reply?.id === 'number' ? server.pending.get(reply.id) : undefined;
    if (!pending) return;
    server.pending.delete(reply.id as number);
    clearTimeout(pending.timer);
    const e = reply.error;
    if (e && typeof e === 'object') {
      pending.reject(new TrainingError(e.code ?? 'trainer_error', e.message ?? `${pending.command} failed`, e.hint ?? undefined,
        e.field ? [{ path: e.field, message: e.message ?? '' }] : [],
        typeof e.file === 'string' ? { file: e.file, line: typeof e.line === 'number' ? e.line : undefined } : undefined));
    } else {
      pending.resolve(reply.result);
    }
  }

  /** The process is gone: a crash gets each query one more try on a fresh process, anything else fails them. */
  private ended(server: Server, error: TrainingError, retry: boolean): void {
    if (this.server === server) this.server = undefined;
    const pending = [...server.pending];
    server.pending.clear();
    if (pending.length) this.log?.warn(`query service: ${error.message}`);
    for (const [id, p] of pending) {
      if (retry && !p.retried && !this.disposed) {
        p.retried = true;
        this.send(server.python, id, p);
      } else {
        clearTimeout(p.timer);
        p.reject(this.disposed ? new TrainingError('disposed', 'the query service was shut down') : error);
      }
    }
  }

  private stop(reason: string): void {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.log?.info(`query service: stopping pid ${server.child.pid} (${reason})`);
    server.child.stdin.end();
    server.child.kill('SIGKILL'); // it holds nothing worth a graceful end: answers are computed fresh each time
    for (const p of server.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new TrainingError('disposed', `the query service stopped: ${reason}`));
    }
    server.pending.clear();
  }

  private armIdle(): void {
    clearTimeout(this.idleTimer);
    if (this.disposed || !this.server || this.server.pending.size) return;
    this.idleTimer = setTimeout(() => this.stop('idle'), this.options.idleMs ?? 300_000);
    this.idleTimer.unref();
  }
}
