// The form's one request rule (webview/latest-request.ts): the same key is not asked twice, a newer key makes the
// older answer stale, cancel drops what is scheduled and what is on its way, forget asks the same key again.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LatestRequest } from '../../webview/latest-request';

/** Schedules `key` and resolves with its isLatest() once the request has run. */
function ask(r: LatestRequest, key: string, asked: string[]): Promise<() => boolean> {
  return new Promise(resolve => r.want(key, isLatest => { asked.push(key); resolve(isLatest); }));
}

test('the same key is asked once; a newer key makes the older answer stale; forget asks again', async () => {
  const r = new LatestRequest(0);
  const asked: string[] = [];
  const a = await ask(r, 'a', asked);
  r.want('a', () => asked.push('a again')); // same key: nothing scheduled
  const b = await ask(r, 'b', asked);
  assert.deepEqual([a(), b()], [false, true]);
  r.forget();
  const b2 = await ask(r, 'b', asked);
  assert.deepEqual(asked, ['a', 'b', 'b']);
  assert.deepEqual([b(), b2()], [false, true]);
});

test('a newer key before the delay replaces the scheduled one; cancel makes the running one stale', async () => {
  const r = new LatestRequest(0);
  const asked: string[] = [];
  r.want('x', () => asked.push('x'));
  const y = await ask(r, 'y', asked); // in the same turn: x never runs
  assert.deepEqual(asked, ['y']);
  r.cancel();
  assert.equal(y(), false);
  const y2 = await ask(r, 'y', asked); // cancel forgot the key
  assert.equal(y2(), true);
});
