// The engine in a worker thread (an older tree's engine) vs in a child process (this tree's), as a user runs it (not a
// test): each leg is a host process of its own holding a CompletionEngine built from a tree's bundle, legs alternating
// round by round. Measures load, decode ms/token (inside the engine, and as the host sees the streamed tokens), CPU
// time per decode step (engine and host processes together), the first token after a one-character edit, and the
// engine process's huge pages (/proc/<pid>/smaps_rollup AnonHugePages) where a leg asks for them.
//
//   node --import tsx scripts/bench/engine_process_ab.ts --old <tree with the worker-thread engine, bundled>
//        --export <dir> [--new <tree>] [--threads 2] [--tokens 64] [--rounds 4] [--legs thread,process,process-thp]
//   node --import tsx scripts/bench/engine_process_ab.ts --ipc [--n 2000]   (IPC round trip of a token message)
//
// Legs: thread = the old tree's engine (worker thread in the host, which starts without GLIBC_TUNABLES, as an
// extension host does); process = this tree's engine (child process); process-thp = the same with
// GLIBC_TUNABLES=glibc.malloc.hugetlb=1 in the host's environment, which the engine process inherits: glibc's
// transparent huge pages for the weights (measured, not taken: docs/engine.md). Each tree needs its bundle (node esbuild.mjs). One JSON line per leg
// and round, then the medians per leg of the legs during whose decode other processes took <= 10% of the CPU (each
// leg starts in a quiet second when one comes within a minute); run under `flock /tmp/bench.lock`.
import { fork, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cpuWindow, waitForQuiet } from './load';

const argv = process.argv.slice(2);
const opt = (name: string, dflt?: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1]! : dflt;
};
const ROOT = path.resolve(__dirname, '../..');
const PROMPT = fs.readFileSync(path.join(ROOT, 'examples/code-corpus/user_store.py'), 'utf8').slice(0, 600);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const TICK_MS = 1000 / 100; // USER_HZ

/** User + system CPU time of a process so far, ms (/proc/<pid>/stat). */
function cpuMs(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_MS;
}

function smapsKiB(pid: number, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

async function leg(): Promise<void> {
  const tree = path.resolve(opt('tree')!);
  const exportDir = path.resolve(opt('export')!);
  const threads = Number(opt('threads', '2'));
  const tokens = Number(opt('tokens', '64'));
  const { CompletionEngine } = (await import(path.join(tree, 'src/inference/engine.ts'))) as typeof import('../../src/inference/engine');
  const t0 = performance.now();
  const engine = await CompletionEngine.load(exportDir, { threads, workerEntry: path.join(tree, 'dist/inference-worker.js') });
  const loadMs = performance.now() - t0;
  const pid = (engine.info as { pid?: number }).pid ?? process.pid;
  const cpu = () => cpuMs(pid) + (pid === process.pid ? 0 : cpuMs(process.pid));
  await engine.generate(PROMPT, { maxTokens: 2, ignoreEos: true, reuseCache: false }); // warm-up
  // Decode only: the prompt prefilled first, then decoded from its kept logits (tokens - 1 model steps).
  await engine.generate(PROMPT, { maxTokens: 0, reuseCache: false });
  const c0 = cpu();
  const window = cpuWindow();
  let first = 0;
  const r = await engine.generate(PROMPT, { maxTokens: tokens, ignoreEos: true, draft: false, onToken: () => { first ||= performance.now(); } });
  const othersShare = window().otherShare;
  const hostDecodeMsPerToken = (performance.now() - first) / (r.tokens.length - 1);
  const cpuMsPerStep = (cpu() - c0) / (r.tokens.length - 1);
  const engineDecodeMsPerToken = r.timings.decodeMs / (r.tokens.length - 1);
  // The first token after a one-character edit (the prompt served just before), as the host sees it.
  const edits: number[] = [];
  for (const ch of 'abc') {
    await engine.generate(PROMPT, { maxTokens: 1, ignoreEos: true });
    const t = performance.now();
    await engine.generate(PROMPT + ch, { maxTokens: 1, ignoreEos: true, onToken: () => {} });
    edits.push(performance.now() - t);
  }
  const out = {
    loadMs: Math.round(loadMs), enginePid: pid, inHost: pid === process.pid,
    engineDecodeMsPerToken: +engineDecodeMsPerToken.toFixed(2), hostDecodeMsPerToken: +hostDecodeMsPerToken.toFixed(2),
    cpuMsPerStep: +cpuMsPerStep.toFixed(1), editFirstTokenMs: +median(edits).toFixed(1),
    anonHugePagesMiB: Math.round(smapsKiB(pid, 'AnonHugePages') / 1024), rssMiB: Math.round(smapsKiB(pid, 'Rss') / 1024),
    othersShareDuringDecode: +othersShare.toFixed(3),
  };
  await engine.dispose();
  console.log(JSON.stringify(out));
}

/** Round trips of a token-sized message to a forked child and back, serialization 'advanced' as the engine's. */
async function ipc(): Promise<void> {
  if (argv.includes('--echo')) {
    process.on('message', m => process.send!(m));
    return;
  }
  const n = Number(opt('n', '2000'));
  const child = fork(__filename, ['--ipc', '--echo'], { execArgv: ['--import', 'tsx'], serialization: 'advanced' });
  const msg = { type: 'token', id: 1, text: ' user' };
  const once = () => new Promise<number>(resolve => {
    const t = performance.now();
    child.once('message', () => resolve(performance.now() - t));
    child.send(msg);
  });
  for (let i = 0; i < 200; i++) await once();
  const c0 = cpuMs(child.pid!) + cpuMs(process.pid);
  const times: number[] = [];
  for (let i = 0; i < n; i++) times.push(await once());
  const cpu = (cpuMs(child.pid!) + cpuMs(process.pid) - c0) / n;
  times.sort((a, b) => a - b);
  console.log(JSON.stringify({ roundTrips: n, p50Us: +(times[n >> 1]! * 1000).toFixed(0), p95Us: +(times[Math.floor(n * 0.95)]! * 1000).toFixed(0), cpuUsPerRoundTrip: +(cpu * 1000).toFixed(0), load: os.loadavg()[0]!.toFixed(2) }));
  child.kill();
}

async function main(): Promise<void> {
  const old = opt('old');
  const exportDir = opt('export');
  if (!old || !exportDir) throw new Error('give --old <tree> --export <dir>');
  const trees: Record<string, string> = { thread: path.resolve(old), process: path.resolve(opt('new', ROOT)!), 'process-thp': path.resolve(opt('new', ROOT)!) };
  const legs = opt('legs', 'thread,process,process-thp')!.split(',');
  const rounds = Number(opt('rounds', '4'));
  const seen: Record<string, Record<string, number>[]> = {};
  for (let round = 0; round < rounds; round++) {
    // Rotate which leg goes first, so drift over the run does not favour one.
    const order = legs.map((_, i) => legs[(i + round) % legs.length]!);
    for (const name of order) {
      const env = { ...process.env };
      delete env.GLIBC_TUNABLES;
      if (name === 'process-thp') env.GLIBC_TUNABLES = 'glibc.malloc.hugetlb=1';
      const quiet = await waitForQuiet(0.1, 60_000); // start in a quiet second when one comes
      const loadBefore = os.loadavg()[0]!;
      const r = spawnSync(process.execPath, ['--import', 'tsx', __filename, '--leg', '--tree', trees[name]!, '--export', exportDir, '--threads', opt('threads', '2')!, '--tokens', opt('tokens', '64')!], { cwd: ROOT, env, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`leg ${name} failed: ${r.stderr.slice(-2000)}`);
      const line = JSON.parse(r.stdout.trim().split('\n').pop()!);
      const row = { leg: name, round, ...line, startedQuiet: quiet.quiet, load: +loadBefore.toFixed(2), loadAfter: +os.loadavg()[0]!.toFixed(2) };
      (seen[name] ??= []).push(row);
      console.log(JSON.stringify(row));
    }
  }
  const keys = ['loadMs', 'engineDecodeMsPerToken', 'hostDecodeMsPerToken', 'cpuMsPerStep', 'editFirstTokenMs', 'anonHugePagesMiB', 'rssMiB'];
  // Legs during which other processes took over 10% of the CPU are left out of the medians (kept above).
  const medians = Object.fromEntries(Object.entries(seen).map(([name, rows]) => {
    const clean = rows.filter(r => r.othersShareDuringDecode! <= 0.1);
    return [name, { cleanLegs: `${clean.length}/${rows.length}`, ...Object.fromEntries(keys.map(k => [k, clean.length ? median(clean.map(r => r[k]!)) : null])) }];
  }));
  console.log(JSON.stringify({ medians }));
}

if (argv.includes('--leg')) void leg().catch(e => { console.error(e); process.exit(1); });
else if (argv.includes('--ipc')) void ipc().catch(e => { console.error(e); process.exit(1); });
else void main().catch(e => { console.error(e); process.exit(1); });
