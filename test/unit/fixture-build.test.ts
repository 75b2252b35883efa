// The fixture builder: one build per cache key even when several processes want it at once, a lock left by a dead
// process is taken over, and a failed or hung build says what ran and how it ended (fixture-build.ts).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { buildFixtureOnce } from './fixture-build';

const ROOT = path.resolve(__dirname, '..', '..');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bloom-peft-fixture-build-'));
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** A build that appends its pid to `builds`, takes a moment, then marks the folder done. */
function shellBuild(dir: string, builds: string) {
  return {
    what: 'test fixture', dir, done: () => fs.existsSync(path.join(dir, 'done')),
    command: 'sh', args: ['-c', `echo $$ >> '${builds}'; sleep 1; mkdir -p '${dir}'; touch '${dir}/done'`],
  };
}

test('three processes wanting the same fixture at once build it once', async () => {
  const dir = path.join(scratch, 'shared');
  const builds = path.join(scratch, 'builds.txt');
  const script = `require('./test/unit/fixture-build').buildFixtureOnce({ ...${JSON.stringify({ ...shellBuild(dir, builds), done: undefined })}, done: () => require('fs').existsSync(${JSON.stringify(path.join(dir, 'done'))}) })`;
  const codes = await Promise.all([0, 1, 2].map(() => new Promise<number | null>(resolve => {
    const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, stdio: 'ignore' });
    child.on('exit', code => resolve(code));
  })));
  assert.deepEqual(codes, [0, 0, 0]);
  assert.equal(fs.readFileSync(builds, 'utf8').trim().split('\n').length, 1, 'one build');
  assert.equal(fs.existsSync(`${dir}.lock`), false, 'the lock is released');
});

test('a lock left by a process that is gone is taken over', () => {
  const dir = path.join(scratch, 'stale');
  const builds = path.join(scratch, 'stale-builds.txt');
  const dead = spawnSync('true').pid; // exited and reaped
  fs.writeFileSync(`${dir}.lock`, String(dead));
  buildFixtureOnce(shellBuild(dir, builds));
  assert.ok(fs.existsSync(path.join(dir, 'done')));
  assert.equal(fs.existsSync(`${dir}.lock`), false);
});

test('a failed build names the fixture, the exit code and its last output', () => {
  const dir = path.join(scratch, 'fails');
  assert.throws(
    () => buildFixtureOnce({ what: 'test fixture', dir, done: () => false, command: 'sh', args: ['-c', 'echo "Traceback: no torch" >&2; exit 3'] }),
    (e: Error) => /building the test fixture failed \(exit 3\)/.test(e.message) && e.message.includes('Traceback: no torch'),
  );
  assert.equal(fs.existsSync(`${dir}.lock`), false, 'a failed build releases the lock');
});

test('a hung build is stopped at its limit with a message saying so', () => {
  const dir = path.join(scratch, 'hangs');
  assert.throws(
    () => buildFixtureOnce({ what: 'test fixture', dir, done: () => false, command: 'sh', args: ['-c', 'echo started; sleep 600'], limitMs: 500 }),
    (e: Error) => /did not finish within .* min and was stopped \(load average [\d. ]+; the build itself is not timed/.test(e.message) && e.message.includes('started'),
  );
});
