// The headless CLI as a separate process, and a TrainingService following its run like a second VS Code
// window would (re-attach by run.json pid + events.jsonl tail), stopping it with `bloom-peft stop`, resuming
// it with `bloom-peft resume`, then `runs` and `complete`. Also params / preview / check through the service.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { TrainerEvent } from '../../src/protocol';
import { waitGroupGone } from '../../src/training/processes';
import { TrainingError } from '../../src/training/types';
import { ENV, newService, ROOT, tempDir, tinyConfig, TRAIN_FILE, withFaults } from './training-fixture';

// absolute: the CLI runs with another cwd, where a bare 'tsx' would not resolve
const TSX = pathToFileURL(require.resolve('tsx')).href;

interface Result { code: number | null; stdout: string; stderr: string }

const children = new Set<number>();
after(() => { for (const pid of children) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } });

function cli(args: string[], env: NodeJS.ProcessEnv = ENV, cwd = ROOT): { done: Promise<Result>; pid: number } {
  const child = spawn(process.execPath, ['--import', TSX, path.join(ROOT, 'src', 'cli', 'main.ts'), ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child.pid!);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', d => (stdout += d));
  child.stderr.on('data', d => (stderr += d));
  return { pid: child.pid!, done: new Promise(resolve => child.on('close', code => { children.delete(child.pid!); resolve({ code, stdout, stderr }); })) };
}

test('CLI train is followed by another service, stopped by `bloom-peft stop`, resumed, listed and completed from', { timeout: 300_000 }, async () => {
  const work = tempDir('cli');
  const runs = path.join(work, 'runs');
  // relative paths in a config file are relative to that file
  fs.mkdirSync(path.join(work, 'cfg', 'data'), { recursive: true });
  fs.copyFileSync(TRAIN_FILE, path.join(work, 'cfg', 'data', 'train.jsonl'));
  const config = tinyConfig({ training: { max_steps: 6, save_every: 0 }, export: { onnx: true } });
  config.data.train_file = 'data/train.jsonl';
  fs.writeFileSync(path.join(work, 'cfg', 'demo.json'), JSON.stringify(config, null, 2));

  const train = cli(['train', '--config', 'cfg/demo.json', '--runs-dir', runs, '--name', 'cli'], withFaults({ step_delay: 1 }), work);

  // a second "window": finds the run through run.json and follows its events.jsonl
  const watcher = newService(runs);
  const followed: TrainerEvent[] = [];
  watcher.onEvent((_id, e) => followed.push(e));
  let attached: string | undefined;
  for (let i = 0; i < 600 && !attached; i++) {
    attached = (await watcher.reattach())[0]?.id;
    if (!attached) await new Promise(r => setTimeout(r, 100));
  }
  if (!attached) assert.fail(`the CLI run was not found; CLI said:\n${JSON.stringify(await Promise.race([train.done, new Promise(r => setTimeout(r, 100, 'still running'))]))}`);
  assert.equal(watcher.current()?.id, attached);
  assert.equal(watcher.current()?.owned, false);
  assert.equal((await watcher.listRuns())[0].status, 'running');
  for (let i = 0; i < 1200 && !followed.some(e => e.type === 'progress'); i++) await new Promise(r => setTimeout(r, 100));
  assert.ok(followed.some(e => e.type === 'progress'), 'progress events arrive through the tail');
  const pid = watcher.current()!.pid;

  const stop = await cli(['stop', attached.slice(-10), '--runs-dir', runs]).done;
  assert.equal(stop.code, 0, stop.stderr);
  assert.match(stop.stdout, /stopped/);
  const trained = await train.done;
  assert.equal(trained.code, 2, `stopped runs exit with 2\n${trained.stdout}\n${trained.stderr}`);
  assert.match(trained.stdout, /\[[█░]+\]\s+1\/6\s+loss \d/); // plain progress lines when not a TTY
  assert.match(trained.stdout, /resume with: bloom-peft resume/);
  assert.deepEqual(await waitGroupGone(pid, 3000), []);
  for (let i = 0; i < 50 && watcher.current(); i++) await new Promise(r => setTimeout(r, 100));
  assert.equal(watcher.current(), undefined, 'the follower lets go once the run ended');
  assert.ok(followed.some(e => e.type === 'done'));
  assert.equal((await watcher.listRuns())[0].status, 'stopped');

  const resumed = await cli(['resume', attached, '--runs-dir', runs]).done;
  assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
  assert.match(resumed.stdout, /resumed from step \d/);
  assert.match(resumed.stdout, /done \(completed\) at step 6/);

  const table = await cli(['runs', '--runs-dir', runs]).done;
  assert.match(table.stdout, new RegExp(`${attached}\\s+completed\\s+lora\\s+6/6`));
  const json = JSON.parse((await cli(['runs', '--json', '--runs-dir', runs]).done).stdout);
  assert.equal(json[0].status, 'completed');
  assert.equal(json[0].step, 6);

  const completion = await cli(['complete', '--run', attached, '--runs-dir', runs, '--max-tokens', '8', 'Convert to snake_case', '--input', 'load user data']).done;
  assert.equal(completion.code, 0, completion.stderr);
  assert.match(completion.stderr, /\[(eos|length|stop); \d+ tokens in \d+ ms\]/);

  const bad = await cli(['train', '--config', path.join(work, 'nope.json'), '--runs-dir', runs]).done;
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /nope\.json: cannot read the config: ENOENT\nhint: /);
  const usage = await cli(['frobnicate']).done;
  assert.equal(usage.code, 64);
  watcher.dispose();
});

test('params, preview and check answer through the trainer; bad configs come back as field-naming errors', { timeout: 180_000 }, async () => {
  const service = newService(tempDir('runs'));
  const config = tinyConfig();
  const [params, preview, report] = [await service.params(config), await service.preview(config, 2), await service.check()];
  const rows = preview.rows;
  assert.ok(params.trainable > 0 && params.trainable < params.total);
  assert.ok(Math.abs(params.percent - (100 * params.trainable) / params.total) < 1e-3);
  assert.equal(rows.length, 2);
  assert.match(String(rows[0].text), /Human: /);
  assert.ok(preview.trainRows > preview.evalRows && preview.evalRows > 0 && Array.isArray(preview.warnings));
  assert.ok(Array.isArray(report.problems));
  assert.match(String(report.python), /^3\.\d+/);
  assert.match(String(report.torch), /^2\./);
  // cached: the same question does not start Python again
  const t0 = Date.now();
  assert.deepEqual(await service.params(config), params);
  assert.ok(Date.now() - t0 < 50);
  // the dashboard may ask before a dataset is chosen
  const { data: _unused, ...noData } = config;
  assert.deepEqual(await service.params(noData as typeof config), params);
  await assert.rejects(service.preview({ ...config, data: { ...config.data, train_file: path.join(ROOT, 'package.json') } }),
    (e: TrainingError) => e instanceof TrainingError && e.message.length > 0);
  service.dispose();
});
