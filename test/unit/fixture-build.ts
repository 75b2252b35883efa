// Builds a cached test fixture (a Python process that trains and exports) once per cache key. A fixture build is
// set-up, not a timed assertion: on a loaded machine it may take many times its idle time, so it gets a generous
// limit (only there to end a hung build) and a message that says what was running and how loaded the machine was.
// Several test processes may want the same key at once (test files run one after another, but two checkouts or two
// suites on one machine share the temp folder): the first takes `<dir>.lock` (its pid), the others wait for it and
// then use its result; a lock whose process is gone is taken over.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Idle, a fixture builds in 1–3 minutes; at load 25 on two cores the engine fixtures took over 10. */
export const FIXTURE_BUILD_LIMIT_MS = 45 * 60_000;

export interface FixtureBuild {
  /** What is being built, for messages ("engine fixtures (parity, big)"). */
  what: string;
  /** The cache folder the build fills; `<dir>.lock` guards it. */
  dir: string;
  /** Whether `dir` already holds a complete build (checked before and after taking the lock). */
  done: () => boolean;
  /** The build: an executable, its arguments, its environment. It must leave `done()` true when it exits 0. */
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** Run under the lock just before the build (clear leftovers) and after it succeeds (move the result in place). */
  before?: () => void;
  after?: () => void;
  limitMs?: number;
}

export function buildFixtureOnce(b: FixtureBuild): void {
  if (b.done()) return;
  const limitMs = b.limitMs ?? FIXTURE_BUILD_LIMIT_MS;
  const lock = `${b.dir}.lock`;
  fs.mkdirSync(path.dirname(lock), { recursive: true });
  const release = acquire(lock, b.what, limitMs);
  try {
    if (b.done()) return; // built by the process we waited for
    b.before?.();
    const started = Date.now();
    const r = spawnSync(b.command, b.args, { env: b.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: limitMs, killSignal: 'SIGKILL', maxBuffer: 64 << 20 });
    const took = `${((Date.now() - started) / 1000).toFixed(0)} s`;
    const tail = `${r.stderr ?? ''}${r.stdout ?? ''}`.slice(-4000);
    const cmd = [b.command, ...b.args].map(a => (a.length > 80 ? `${a.slice(0, 40)}…` : a)).join(' ');
    if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') {
      throw new Error(`building the ${b.what} did not finish within ${limitMs / 60_000} min and was stopped (load average ${loadAverage()}; the build itself is not timed, this limit only ends a hung one). Command: ${cmd}\nIts last output:\n${tail}`);
    }
    if (r.error) throw new Error(`building the ${b.what} could not start: ${r.error.message}. Command: ${cmd}`);
    if (r.status !== 0) throw new Error(`building the ${b.what} failed (exit ${r.status ?? r.signal}) after ${took}. Command: ${cmd}\nIts last output:\n${tail}`);
    b.after?.();
    if (!b.done()) throw new Error(`building the ${b.what} exited 0 after ${took} but ${b.dir} is not complete. Command: ${cmd}\nIts last output:\n${tail}`);
  } finally {
    release();
  }
}

function loadAverage(): string {
  return os.loadavg().map(l => l.toFixed(1)).join(' ');
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

/** Takes the lock file (O_EXCL), waiting while a live process holds it; returns its release. */
function acquire(lock: string, what: string, limitMs: number): () => void {
  const waitUntil = Date.now() + limitMs + 60_000; // the holder's own build limit, and a minute to clean up
  let told = false;
  for (;;) {
    try {
      const fd = fs.openSync(lock, 'wx');
      fs.writeSync(fd, String(process.pid));
      fs.closeSync(fd);
      return () => fs.rmSync(lock, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let holder = Number.NaN;
    try {
      holder = Number.parseInt(fs.readFileSync(lock, 'utf8'), 10);
    } catch {
      continue; // released between our open and read: try again
    }
    // no pid yet: the holder is between creating the file and writing to it, unless that was long ago (it died)
    const stale = Number.isInteger(holder) ? !alive(holder) : Date.now() - statMs(lock) > 60_000;
    if (stale) {
      fs.rmSync(lock, { force: true });
      continue;
    }
    if (Date.now() > waitUntil) {
      throw new Error(`waited ${Math.round(limitMs / 60_000) + 1} min for pid ${holder} to build the ${what} (${lock}); it still holds the lock (load average ${loadAverage()}). Remove the lock if that process is not a fixture build.`);
    }
    if (!told) {
      process.stderr.write(`# waiting for pid ${holder}, which is building the ${what} (${lock})\n`);
      told = true;
    }
    sleepSync(2000);
  }
}

function statMs(file: string): number {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return Date.now();
  }
}
