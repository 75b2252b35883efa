// What the rest of the machine did while a benchmark leg ran: CPU time of other processes from /proc/stat
// (all busy time, steal included) less this process's own (every thread: workers, onnxruntime, llama.cpp).
// Legs where others took a real share of the CPU are disturbed; the benches drop them from the medians and say so.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

const TICK_S = 0.01; // USER_HZ is 100 on Linux
const busySeconds = (): number | undefined => {
  try {
    // cpu  user nice system idle iowait irq softirq steal ...
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + (f[7] ?? 0)) * TICK_S;
  } catch {
    return undefined; // not Linux: nothing to tell, every leg counts as undisturbed
  }
};
/** CPU seconds of this process and of its live descendants (the engine runs in a child process of its own). */
export const ownSeconds = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6 + descendantSeconds(process.pid);
};
function descendantSeconds(root: number): number {
  let children: Map<number, { ppid: number; seconds: number }>;
  try {
    children = new Map();
    for (const name of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        // pid (comm) state ppid ... utime(14) stime(15): comm may hold spaces, so split after its ')'
        const f = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
        const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
        children.set(Number(name), { ppid: Number(rest[1]), seconds: (Number(rest[11]) + Number(rest[12])) * TICK_S });
      } catch { /* exited meanwhile */ }
    }
  } catch {
    return 0; // not Linux
  }
  let total = 0;
  const frontier = [root];
  while (frontier.length) {
    const parent = frontier.pop()!;
    for (const [pid, p] of children) if (p.ppid === parent) { total += p.seconds; frontier.push(pid); }
  }
  return total;
}

export interface CpuWindow { wallMs: number; /** share of all cores' time used by other processes, 0..1 */ otherShare: number }

/** Starts a window; the returned function ends it. `extraOwnSeconds` adds CPU of a helper process we drove. */
export function cpuWindow(): (extraOwnSeconds?: number) => CpuWindow {
  const t0 = performance.now(); const b0 = busySeconds(); const o0 = ownSeconds();
  return (extra = 0) => {
    const wallMs = performance.now() - t0; const b1 = busySeconds();
    if (b0 === undefined || b1 === undefined) return { wallMs, otherShare: 0 };
    const other = b1 - b0 - (ownSeconds() - o0) - extra;
    // /proc/stat ticks are 10 ms: a short window can read a tick's worth either way
    return { wallMs, otherShare: Math.max(0, other) / ((wallMs / 1000) * os.cpus().length) };
  };
}

/**
 * Waits (up to `maxWaitMs`) for a second in which other processes took <= `maxOther` of the CPU, so that rounds
 * start in a quiet window of a shared machine instead of being measured and dropped. Returns whether one came.
 */
export async function waitForQuiet(maxOther: number, maxWaitMs: number): Promise<{ quiet: boolean; waitedMs: number }> {
  const t0 = performance.now();
  for (;;) {
    const end = cpuWindow();
    await new Promise(r => setTimeout(r, 1000));
    if (end().otherShare <= maxOther) return { quiet: true, waitedMs: performance.now() - t0 };
    if (performance.now() - t0 >= maxWaitMs) return { quiet: false, waitedMs: performance.now() - t0 };
  }
}

/** Ends a helper process with this one (a killed bench leaves no helper behind). */
export function endWithThisProcess(child: { kill(): boolean }): void {
  const end = () => { child.kill(); };
  process.once('exit', end);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { end(); process.exit(130); });
}

export const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); const n = s.length; return n === 0 ? NaN : n % 2 ? s[n >> 1]! : (s[n / 2 - 1]! + s[n / 2]!) / 2; };
export const spread = (xs: number[]) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length });

/** Lines of JSON from a helper process's stdout, one per call. */
export function jsonLines(stream: NodeJS.ReadableStream, what: string): () => Promise<Record<string, unknown>> {
  const lines = readline.createInterface({ input: stream })[Symbol.asyncIterator]();
  return async () => {
    const l = await lines.next();
    if (l.done) throw new Error(`${what} ended without an answer (its error is above)`);
    return JSON.parse(l.value);
  };
}

export interface BandwidthReading { GBs: number; otherShare: number }

/** The read-bandwidth helper (bandwidth.py, `threads` threads), asked for one measurement between bench rounds. */
export async function startBandwidth(python: string, threads: number) {
  const child = spawn(python, [path.join(__dirname, 'bandwidth.py'), '--threads', String(threads)], { env: { ...process.env, OMP_NUM_THREADS: String(threads) }, stdio: ['pipe', 'pipe', 'inherit'] });
  endWithThisProcess(child);
  const next = jsonLines(child.stdout, 'bandwidth.py');
  const ready = await next();
  return {
    bufferBytes: ready.bytes as number,
    async measure(): Promise<BandwidthReading> { child.stdin.write('3\n'); return (await next()) as unknown as BandwidthReading; },
    close() { child.stdin.end(); },
  };
}
