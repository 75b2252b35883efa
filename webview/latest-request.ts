// One rule for what the form asks the host while the user edits (the parameter count, the preview, the draft): a
// request goes out `delayMs` after the last edit that changed its key, a key already asked is not asked again, and
// only the newest request's answer is shown (latest wins).
export class LatestRequest {
  private key: string | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private generation = 0;

  constructor(private readonly delayMs: number) {}

  /** Schedules `run` for `key` unless that key was asked last; `isLatest()` tells `run` whether to show its answer. */
  want(key: string, run: (isLatest: () => boolean) => unknown): void {
    if (key === this.key) return;
    this.key = key;
    clearTimeout(this.timer);
    const generation = ++this.generation;
    this.timer = setTimeout(() => run(() => generation === this.generation), this.delayMs);
  }

  /** Asks again on the next want(), even for the same key (an answer failed, the environment changed). */
  forget(): void {
    this.key = undefined;
  }

  /** Nothing more to show: the scheduled request is dropped, an answer on its way is not shown. */
  cancel(): void {
    this.forget();
    clearTimeout(this.timer);
    this.generation++;
  }
}
