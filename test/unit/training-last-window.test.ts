// bloomPeft.stopTrainingWhenWindowsClose as the run supervisor sees it: lease files of the windows that follow a run.
// A run stops only after no live window has held a lease for the whole grace, and only if the last live windows
// asked for it; a dead window's lease counts as gone (and is removed). Clock values are passed in: no timers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LastWindowWatch, writeWatcherLease } from '../../src/training/supervisor';

function runDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'bloom-peft-lease-'));
}

test('the last window asked to stop: the run stops once no window came back within the grace', () => {
  const dir = runDir();
  const watch = new LastWindowWatch(path.join(dir, 'watchers'), 45_000);
  const lease = writeWatcherLease(dir, true)!;
  assert.ok(lease && fs.existsSync(lease));
  assert.equal(watch.lastWindowGone(0), false, 'a live window follows the run');
  fs.rmSync(lease); // the window closed (or is reloading)
  assert.equal(watch.lastWindowGone(1_000), false, 'the grace starts');
  assert.equal(watch.lastWindowGone(40_000), false);
  writeWatcherLease(dir, true); // the reloaded window re-attached
  assert.equal(watch.lastWindowGone(50_000), false, 'a window came back: no stop, the grace is reset');
  fs.rmSync(path.join(dir, 'watchers'), { recursive: true });
  assert.equal(watch.lastWindowGone(60_000), false);
  assert.equal(watch.lastWindowGone(104_999), false);
  assert.equal(watch.lastWindowGone(105_000), true, '45 s without a window');
});

test('windows that did not ask (the default) never stop a run; a dead window\'s lease is dropped', () => {
  const dir = runDir();
  const watch = new LastWindowWatch(path.join(dir, 'watchers'), 45_000);
  const lease = writeWatcherLease(dir, false)!;
  assert.equal(watch.lastWindowGone(0), false);
  fs.rmSync(lease);
  assert.equal(watch.lastWindowGone(1_000_000), false, 'the setting is off: training goes on without a window');

  // a lease whose process is gone (its start token no longer matches: a pid reused by another process) is removed
  const stale = path.join(dir, 'watchers', '1.json');
  fs.writeFileSync(stale, JSON.stringify({ pid: 1, token: 'linux:0', stopWhenClosed: true }));
  const other = new LastWindowWatch(path.join(dir, 'watchers'), 45_000);
  assert.equal(other.lastWindowGone(0), false, 'a dead window never set the policy');
  assert.ok(!fs.existsSync(stale), 'and its lease was removed');
});
