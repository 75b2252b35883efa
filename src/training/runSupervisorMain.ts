// dist/run-supervisor.js: the owner of a trainer started from VS Code. The extension host starts it detached (own
// session and process group, stdin/stderr ignored), so a window reload or an extension-host crash does not end
// the run: this process keeps the trainer's stdin open, persists its events to events.jsonl and its stderr to
// trainer.log, obeys the stop-requested file, and records the end in run.json. If it is killed itself, the
// trainer sees EOF on stdin and stops with a checkpoint.
//
//   node run-supervisor.js --runs-dir DIR --run-id ID --command train|resume --python PATH
//                          --stop-timeout-ms N [--last-window-grace-ms N]
// stdout: one line, {"pid":N,"pidToken":"…"} once the trainer holds the run lock (or {"error":"…","code"?:"run_in_use"}),
// then nothing.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { RunStore } from './runStore';
import { superviseRun } from './supervisor';
import type { Logger } from './types';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      'runs-dir': { type: 'string' }, 'run-id': { type: 'string' }, command: { type: 'string' }, python: { type: 'string' },
      'stop-timeout-ms': { type: 'string' }, 'last-window-grace-ms': { type: 'string' },
    },
  });
  const need = (k: keyof typeof values): string => {
    const v = values[k];
    if (!v) throw new Error(`run-supervisor: missing --${k}`);
    return v;
  };
  const command = need('command');
  if (command !== 'train' && command !== 'resume') throw new Error(`run-supervisor: --command must be train or resume, not ${command}`);
  const store = new RunStore(path.resolve(need('runs-dir')));
  const id = need('run-id');
  const logFile = path.join(store.dir(id), 'trainer.log');
  const note = (level: string) => (m: string) => { try { fs.appendFileSync(logFile, `[run-supervisor ${process.pid}] ${level}: ${m}\n`); } catch { /* folder gone */ } };
  // the trainer's stderr already lands in trainer.log (TrainerProcess): no `append` here, or it would be written twice
  const log: Logger = { trace() {}, info: note('info'), warn: note('warn'), error: note('error') };
  // after the handshake nobody reads stdout: a write must never kill this process
  process.stdout.on('error', () => {});
  process.on('SIGHUP', () => {}); // a terminal or session going away is not a stop
  const graceRaw = values['last-window-grace-ms'];
  const run = await superviseRun({
    store, runId: id, command, owner: 'detached', python: need('python'), log,
    stopTimeoutMs: Number(need('stop-timeout-ms')),
    lastWindowGraceMs: graceRaw !== undefined ? Number(graceRaw) : undefined,
  });
  // SIGTERM / SIGINT to this process: the same graceful stop as the stop-requested file
  for (const s of ['SIGTERM', 'SIGINT'] as const) {
    process.on(s, () => {
      log.info(`${s}: stopping the trainer gracefully`);
      try { store.markStopRequested(id); } catch { /* folder gone */ }
      void run.proc.stop(Number(values['stop-timeout-ms']));
    });
  }
  // answer once the trainer holds the run lock (its first second), so a refused start is the caller's error
  const refused = await Promise.race([
    run.ended.then(end => (run.proc.refused ? end : undefined)),
    (async () => {
      while (store.readLock(id)?.pid !== run.proc.pid && run.proc.running) await new Promise(r => setTimeout(r, 100));
      return undefined;
    })(),
  ]);
  if (refused) {
    process.stdout.write(JSON.stringify({ error: refused.message, code: 'run_in_use' }) + '\n');
    return 0;
  }
  process.stdout.write(JSON.stringify({ pid: run.proc.pid, pidToken: run.record.pidToken }) + '\n');
  const end = await run.ended;
  log.info(`trainer ${run.proc.pid} ended: ${end.outcome}`);
  return 0;
}

main().then(
  code => { process.exitCode = code; },
  e => {
    try { process.stdout.write(JSON.stringify({ error: (e as Error).message }) + '\n'); } catch { /* nobody listens */ }
    process.exitCode = 1;
  },
);
