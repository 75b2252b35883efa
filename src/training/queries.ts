// What the dashboard asks while the user types: parameter counts, the data preview and the environment check,
// answered by the resident query service (queryService.ts) with a cache, in-flight sharing and "latest request
// wins" per kind. Takes configs the TrainingService has already validated and resolved. No vscode import.
import type { TrainingConfig } from '../protocol';
import type { ParamsAnswer } from '../protocol/generated/params-answer';
import type { PreviewAnswer } from '../protocol/generated/preview-answer';
import { type PythonChoice, runTrainerJson } from './python';
import { type QueryCommand, type QueryPayload, QueryService } from './queryService';
import { type CheckReport, type Logger, type ParamsResult, type PreviewResult, TrainingError } from './types';

export interface TrainingQueriesOptions {
  python: () => Promise<PythonChoice>;
  env?: NodeJS.ProcessEnv;
  log: Logger;
}

export class TrainingQueries {
  private readonly service: QueryService;
  private readonly cache = new Map<string, Promise<unknown>>();
  /** per kind: the one request waiting for the running one (a newer one replaces it) */
  private readonly waiting = new Map<QueryCommand, { run: () => void; reject: (e: Error) => void }>();
  private readonly busy = new Set<QueryCommand>();

  constructor(private readonly options: TrainingQueriesOptions) {
    this.service = new QueryService({ python: async () => (await options.python()).path, env: options.env, log: options.log });
  }

  async params(config: TrainingConfig): Promise<ParamsResult> {
    const answer = await this.cached<ParamsAnswer>('params', { config });
    return { trainable: answer.trainable, total: answer.total, percent: answer.percent };
  }

  async preview(config: TrainingConfig, rows: number): Promise<PreviewResult> {
    const answer = await this.cached<PreviewAnswer>('preview', { config, rows });
    return { rows: answer.rows, trainRows: answer.train_rows, evalRows: answer.eval_rows, warnings: answer.warnings };
  }

  /** Environment report (works without torch). */
  async check(): Promise<CheckReport> {
    try {
      return await this.service.request<CheckReport>('check');
    } catch (e) {
      // the check exists for broken environments: where the resident process cannot even run, ask a one-shot one,
      // which reports what is missing without importing it
      if (!(e instanceof TrainingError) || !['trainer_failed', 'environment'].includes(e.code)) throw e;
      const python = await this.options.python();
      return runTrainerJson<CheckReport>(python.path, ['check'], { env: this.options.env, timeoutMs: 120_000 });
    }
  }

  dispose(): void {
    for (const w of this.waiting.values()) w.reject(new TrainingError('disposed', 'the training service was shut down'));
    this.waiting.clear();
    this.service.dispose();
  }

  /** One query per kind at a time; the same question is answered from the cache (failures are not cached). */
  private async cached<T>(kind: QueryCommand, payload: QueryPayload): Promise<T> {
    const python = await this.options.python();
    const key = `${kind}\0${python.path}\0${JSON.stringify(payload)}`;
    const hit = this.cache.get(key);
    if (hit) return hit as Promise<T>;
    if (this.busy.has(kind)) {
      await new Promise<void>((resolve, reject) => {
        this.waiting.get(kind)?.reject(new TrainingError('superseded', `a newer ${kind} request replaced this one`));
        this.waiting.set(kind, { run: resolve, reject });
      });
      const again = this.cache.get(key);
      if (again) return again as Promise<T>;
    }
    this.busy.add(kind);
    const p = this.service.request<T>(kind, payload);
    this.cache.set(key, p);
    if (this.cache.size > 64) this.cache.delete(this.cache.keys().next().value as string);
    try {
      return await p;
    } catch (e) {
      this.cache.delete(key); // the user may fix the file
      throw e;
    } finally {
      this.busy.delete(kind);
      const next = this.waiting.get(kind);
      this.waiting.delete(kind);
      next?.run();
    }
  }
}
