// "Compare methods": the same data and hyperparameters through several methods, one run after another,
// then a table of the results. Runs on the host so the queue survives the webview being hidden or reloaded.
import type { MethodConfig, MethodName, TrainingConfig } from '../protocol/config';
import type { CompareJob, RunRow } from '../protocol/messages';
import type { Disposable, RunEnd, TrainingServiceApi } from '../training/types';

export class CompareQueue implements Disposable {
  job: CompareJob | undefined;
  private waiting: { runId: string; resolve: (end: RunEnd) => void } | undefined;
  // a run may end before start() has told us its id (a trainer that fails at once)
  private readonly ended = new Map<string, RunEnd>();
  private seq = 0;

  constructor(
    private readonly training: TrainingServiceApi,
    private readonly publish: (job: CompareJob) => void,
    private readonly watch: (runId: string) => Promise<RunRow>,
  ) {}

  /** Queues `methods` and returns at once; progress is published after every change. */
  start(config: TrainingConfig, methods: MethodName[]): CompareJob {
    if (this.job?.state === 'running') throw Object.assign(new Error('A comparison is already running.'), { hint: 'Cancel it first, or wait for it to finish.' });
    if (this.training.current()) throw Object.assign(new Error('A training run is in progress.'), { hint: 'Stop it or wait for it to finish before comparing methods.' });
    const job: CompareJob = { id: `cmp${Date.now().toString(36)}${++this.seq}`, state: 'running', entries: methods.map(method => ({ method, status: 'queued' })) };
    this.job = job;
    void this.run(job, config);
    return job;
  }

  async cancel(): Promise<void> {
    const job = this.job;
    if (!job || job.state !== 'running') return;
    job.state = 'cancelled';
    for (const e of job.entries) if (e.status === 'queued') { e.status = 'stopped'; e.error = 'cancelled'; }
    this.publish(job);
    if (this.waiting) await this.training.stop(this.waiting.runId);
  }

  onRunEnded(end: RunEnd): void {
    if (this.waiting?.runId === end.runId) this.waiting.resolve(end);
    else if (this.job?.state === 'running') this.ended.set(end.runId, end);
  }

  dispose(): void {
    if (this.job?.state === 'running') this.job.state = 'cancelled';
    this.waiting = undefined;
  }

  private async run(job: CompareJob, base: TrainingConfig): Promise<void> {
    for (const entry of job.entries) {
      if (job.state !== 'running') break;
      const method: MethodConfig = base.method.name === entry.method ? base.method : { name: entry.method } as MethodConfig;
      const config: TrainingConfig = { ...base, method, run_name: `${base.run_name ?? 'compare'}-${entry.method}`.slice(0, 100) }; // the run store adds date and uniqueness
      try {
        const ended = new Promise<RunEnd>(resolve => { this.waiting = { runId: '', resolve }; });
        const info = await this.training.start(config);
        this.waiting!.runId = info.id;
        const early = this.ended.get(info.id);
        if (early) this.waiting!.resolve(early);
        this.ended.clear();
        entry.runId = info.id;
        entry.status = 'running';
        this.publish(job);
        await this.watch(info.id).catch(() => undefined);
        const end = await ended;
        const summary = (await this.training.listRuns()).find(r => r.id === info.id);
        entry.status = summary?.status ?? end.outcome;
        entry.trainablePercent = summary?.trainablePercent ?? null;
        entry.trainLoss = summary?.finalTrainLoss ?? summary?.lastLoss ?? null;
        entry.evalLoss = summary?.finalEvalLoss ?? null;
        entry.tokensPerS = summary?.tokensPerS ?? null;
        entry.runtimeS = summary?.startedAt && summary.endedAt ? (summary.endedAt - summary.startedAt) / 1000 : null;
        entry.evaluation = summary?.evaluation ?? null;
        if (end.outcome === 'failed') entry.error = end.message;
      } catch (e) {
        entry.status = 'failed';
        entry.error = (e as Error).message;
      } finally {
        this.waiting = undefined;
      }
      this.publish(job);
    }
    if (job.state === 'running') job.state = 'done';
    this.publish(job);
  }
}
