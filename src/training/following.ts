// Following runs owned by another process (this window's detached run supervisor, another window, the CLI): tail
// their events.jsonl, poll run.json until the attempt ends, and hold a watcher lease (the last-window-close policy).
// No vscode import.
import fs from 'node:fs';
import type { TrainerEvent, TrainingConfig } from '../protocol';
import { isSameProcessAlive } from './processes';
import { EventsTail, type RunRecord, type RunStore } from './runStore';
import { writeWatcherLease, type TrainerProcess } from './supervisor';
import type { Logger, RunEnd, RunInfo } from './types';

/** A run this window knows is training: its own, or one it follows. */
export interface RunEntry {
  info: RunInfo;
  proc?: TrainerProcess; // present: this process owns the trainer (CLI); absent: a supervisor process does
  tail?: EventsTail;
  record?: RunRecord;
  /** stops following (timer, tail, watcher lease) */
  unwatch?: () => void;
}

export interface FollowingDeps {
  log: Logger;
  /** an event of a followed run (progress already applied to its info) */
  onEvent: (runId: string, e: TrainerEvent) => void;
  /** an attempt ended, as the disk says */
  onEnded: (end: RunEnd) => void;
  onChanged: () => void;
  /** VS Code (detached supervisors): hold a watcher lease with bloomPeft.stopTrainingWhenWindowsClose's value */
  stopWhenWindowsClose?: () => boolean;
  leases: boolean;
}

export class RunFollowing {
  private readonly followed = new Map<string, RunEntry>();

  constructor(private readonly deps: FollowingDeps) {}

  get(id: string): RunEntry | undefined {
    return this.followed.get(id);
  }

  first(): RunEntry | undefined {
    return [...this.followed.values()][0];
  }

  has(id: string): boolean {
    return this.followed.has(id);
  }

  /** Follows a run owned by another process, from its events so far. False when its config cannot be read. */
  follow(store: RunStore, id: string, record: RunRecord): boolean {
    let config: TrainingConfig;
    try { config = store.readConfig(id); } catch { return false; }
    const info: RunInfo = {
      id, dir: store.dir(id), config, pid: record.pid, state: store.stopRequested(id) ? 'stopping' : 'running', owned: false,
      resumed: record.command === 'resume', startedAt: record.startedAt, step: 0,
    };
    for (const e of store.readEvents(id)) applyProgress(info, e);
    const entry: RunEntry = { info, record, tail: this.tail(store, info) };
    this.followed.set(id, entry);
    this.watch(store, entry, () => this.followed.delete(id));
    this.deps.log.info(`following ${id}: trainer pid ${record.pid}, owned by pid ${record.ownerPid} (${record.owner ?? 'another process'})`);
    return true;
  }

  /** Tails a run's events.jsonl into its info and the event listeners. */
  tail(store: RunStore, info: RunInfo): EventsTail {
    return new EventsTail(store.eventsFile(info.id), e => { applyProgress(info, e); this.deps.onEvent(info.id, e); });
  }

  /**
   * Polls events.jsonl and run.json until the attempt ends (then `release`, onEnded with what the disk says), and
   * holds the watcher lease meanwhile. Also used for this window's own detached run.
   */
  watch(store: RunStore, entry: RunEntry, release: () => void): void {
    const record = entry.record!;
    const id = entry.info.id;
    const dir = store.dir(id);
    const wanted = (): boolean => this.deps.stopWhenWindowsClose?.() ?? false;
    let leaseValue = wanted();
    let lease = this.deps.leases ? writeWatcherLease(dir, leaseValue) : undefined;
    const timer = setInterval(() => {
      entry.tail?.poll();
      if (lease && wanted() !== leaseValue) {
        leaseValue = !leaseValue;
        lease = writeWatcherLease(dir, leaseValue);
      }
      const now = store.readRecord(id);
      const trainerAlive = isSameProcessAlive(record.pid, record.pidToken);
      const ownerAlive = !!record.ownerToken && isSameProcessAlive(record.ownerPid, record.ownerToken);
      // run.json naming another trainer is not our end while ours lives (a racing start, refused by the run lock)
      const ended = now?.pid === record.pid ? now.endedAt !== undefined || (!trainerAlive && !ownerAlive) : !trainerAlive;
      if (!ended) return;
      entry.unwatch?.();
      release();
      const end = store.runEnd(id);
      this.deps.log.info(`${id}: ${end.outcome} (trainer pid ${record.pid})`);
      this.deps.onEnded(end);
      this.deps.onChanged();
    }, 500);
    timer.unref?.();
    entry.unwatch = () => {
      clearInterval(timer);
      entry.tail?.poll();
      entry.tail?.dispose();
      if (lease) fs.rmSync(lease, { force: true });
      lease = undefined;
    };
  }

  /** Stops following every run (their trainers go on). */
  dispose(): void {
    for (const f of this.followed.values()) f.unwatch?.();
    this.followed.clear();
  }
}

/** A run's progress as its events tell it. */
export function applyProgress(info: RunInfo, e: TrainerEvent): void {
  if (e.type === 'started') {
    info.totalSteps = e.total_steps;
    info.step = e.resumed_from_step ?? info.step;
  } else if (e.type === 'progress') {
    info.step = e.step;
    info.totalSteps = e.total_steps;
    info.loss = e.loss;
    info.etaS = e.eta_s;
    info.tokensPerS = e.tokens_per_s;
  } else if (e.type === 'done') {
    info.step = e.step;
  }
}
