// Process-tree helpers. The trainer runs as the leader of its own process group (spawned detached), so
// signalling -pid reaches everything it started: DataLoader workers, torchrun children, tokenizer threads.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

const isWindows = process.platform === 'win32';

/** True when a process with this pid exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    // EPERM: it exists but belongs to someone else
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  const stat = readProcStat(pid);
  return stat ? stat.state !== 'Z' && stat.state !== 'X' : true;
}

/**
 * An opaque token identifying one incarnation of a pid (guards against pid reuse after a reboot or a long
 * time): the start time in clock ticks since boot on Linux, `ps -o lstart` elsewhere; undefined if unknown.
 */
export function processStartToken(pid: number): string | undefined {
  const stat = readProcStat(pid);
  if (stat) return `linux:${stat.startTicks}`;
  if (isWindows || process.platform === 'linux') return undefined;
  try {
    const out = execFileSync('ps', ['-o', 'lstart=', '-p', String(pid)], { encoding: 'utf8', timeout: 2000 }).trim();
    return out ? `ps:${out}` : undefined;
  } catch {
    return undefined;
  }
}

/** Alive and the same incarnation as when `token` was recorded (a missing token only checks liveness). */
export function isSameProcessAlive(pid: number, token: string | undefined): boolean {
  if (!isAlive(pid)) return false;
  if (!token) return true;
  const now = processStartToken(pid);
  return now === undefined || now === token;
}

/** The command line of a live process ('' if unknown): /proc/<pid>/cmdline on Linux, `ps` elsewhere. */
export function processCommandLine(pid: number): string {
  if (process.platform === 'linux') {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
    } catch {
      return '';
    }
  }
  if (isWindows) return '';
  try {
    return execFileSync('ps', ['-o', 'command=', '-p', String(pid)], { encoding: 'utf8', timeout: 2000 }).trim();
  } catch {
    return '';
  }
}

export type Verified = { ok: true } | { ok: false; reason: string };

/**
 * May this process be signalled as the one a record describes? Only when its start token was recorded and still
 * matches (not a reused pid) and its command line holds every `expected` part (e.g. `bloom_peft` and the run
 * folder). A record without a token is refused: it cannot tell our trainer from a foreign process.
 */
export function verifyProcess(pid: number, token: string | undefined, expected: string[]): Verified {
  if (!Number.isInteger(pid) || pid <= 1) return { ok: false, reason: `pid ${pid} is not a process a run can own` };
  if (!token) return { ok: false, reason: `no process identity token (pidToken) is recorded for pid ${pid}` };
  if (!isAlive(pid)) return { ok: false, reason: `pid ${pid} is not running` };
  const now = processStartToken(pid);
  if (now !== token) return { ok: false, reason: `pid ${pid} is another process now (start token ${now ?? 'unknown'}, recorded ${token})` };
  const cmdline = processCommandLine(pid);
  const missing = expected.filter(part => !cmdline.includes(part));
  if (missing.length) return { ok: false, reason: `pid ${pid} is not this run's process (its command line "${cmdline.slice(0, 200)}" lacks ${missing.join(', ')})` };
  return { ok: true };
}

/** Pids (not zombies) whose process group is `pgid`. Linux reads /proc; elsewhere a kill(-pgid, 0) probe. */
export function groupMembers(pgid: number): number[] {
  if (process.platform === 'linux') {
    const out: number[] = [];
    for (const name of safeReaddir('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      const stat = readProcStat(Number(name));
      if (stat && stat.pgrp === pgid && stat.state !== 'Z' && stat.state !== 'X') out.push(Number(name));
    }
    return out;
  }
  if (isWindows) return isAlive(pgid) ? [pgid] : [];
  try {
    process.kill(-pgid, 0);
    return [pgid];
  } catch {
    return [];
  }
}

/** Sends a signal to the whole process group (the whole tree on Windows); never throws. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  if (!Number.isInteger(pgid) || pgid <= 0) return;
  if (isWindows) {
    try {
      if (signal === 'SIGKILL') execFileSync('taskkill', ['/pid', String(pgid), '/T', '/F'], { stdio: 'ignore', timeout: 5000 });
      else process.kill(pgid, signal);
    } catch { /* already gone */ }
    return;
  }
  try {
    process.kill(-pgid, signal);
  } catch {
    // no group (already gone) or not a group leader: fall back to the pid itself
    try { process.kill(pgid, signal); } catch { /* already gone */ }
  }
}

/** SIGKILL the group, synchronously. Safe to call from deactivate() and process 'exit' handlers. */
export function killGroupSync(pgid: number): void {
  signalGroup(pgid, 'SIGKILL');
}

/** Resolves once no process of the group is left (or after timeoutMs, with the survivors). */
export async function waitGroupGone(pgid: number, timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = groupMembers(pgid);
    if (left.length === 0 || Date.now() >= deadline) return left;
    await new Promise(r => setTimeout(r, 50));
  }
}

interface ProcStat { state: string; pgrp: number; startTicks: string }

function readProcStat(pid: number): ProcStat | undefined {
  if (process.platform !== 'linux') return undefined;
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // the command name (field 2) is in parentheses and may itself contain spaces and parentheses
  const close = text.lastIndexOf(')');
  const fields = text.slice(close + 2).split(' ');
  // fields[0] is field 3 (state); pgrp is field 5; starttime is field 22
  return { state: fields[0], pgrp: Number(fields[2]), startTicks: fields[19] };
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}
