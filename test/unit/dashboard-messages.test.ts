// The webview -> host message validator: every request shape the dashboard sends passes; anything else
// (unknown methods, extra or mistyped params, path-like run ids, bad ids) is refused with a reason.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHostMessage, parseWebviewMessage, REQUEST_METHODS } from '../../src/protocol/messages';

const config = { model: { name_or_path: 'embedded' }, method: { name: 'lora' }, data: { format: 'instruction', train_file: '/x.jsonl' } };

test('valid requests and notifications pass unchanged', () => {
  const valid: unknown[] = [
    { kind: 'notify', method: 'ready' },
    { kind: 'notify', method: 'draft', params: { config } },
    { kind: 'request', id: 1, method: 'pickModelFolder', params: {} },
    { kind: 'request', id: 2, method: 'pickDataset', params: { kind: 'file', role: 'train' } },
    { kind: 'request', id: 3, method: 'params', params: { config } },
    { kind: 'request', id: 4, method: 'preview', params: { config, rows: 3 } },
    { kind: 'request', id: 5, method: 'start', params: { config } },
    { kind: 'request', id: 6, method: 'stop', params: {} },
    { kind: 'request', id: 7, method: 'resume', params: { runId: 'lora-20250101-1200' } },
    { kind: 'request', id: 8, method: 'openFolder', params: { runId: 'r1', which: 'export' } },
    { kind: 'request', id: 9, method: 'compareMethods', params: { config, methods: ['lora', 'ia3'] } },
    { kind: 'request', id: 10, method: 'generate', params: { runId: 'r1', prompt: 'hi', maxTokens: 16, temperature: 0.5, template: true } },
    { kind: 'request', id: 10, method: 'generate', params: { runId: 'r1', prompt: '再来', topP: 0.9, seed: 7, template: true, history: [{ user: '你好', assistant: '你好！' }] } },
    { kind: 'request', id: 10, method: 'evaluateRun', params: { runId: 'r1' } },
    { kind: 'request', id: 11, method: 'cancelGenerate', params: { genId: 'g1' } },
    { kind: 'request', id: 12, method: 'listRuns' },
  ];
  for (const m of valid) {
    const r = parseWebviewMessage(m);
    assert.ok(r.ok, `${JSON.stringify(m)}: ${!r.ok && r.error}`);
  }
});

test('every request method has a validator entry', () => {
  assert.deepEqual([...REQUEST_METHODS].sort(), ['cancelCompare', 'cancelGenerate', 'compareMethods', 'deleteRun', 'exportRun', 'generate', 'listRuns', 'openFolder', 'params', 'pickDataset', 'pickModelFolder', 'presetConfig', 'preview', 'readEvents', 'resume', 'start', 'stop', 'useAdapter', 'environment', 'setupEnvironment', 'openFile', 'datasetFields', 'evaluateRun'].sort());
});

test('malformed messages are refused with a reason, addressed to their id when there is one', () => {
  const cases: Array<[unknown, RegExp, number | undefined]> = [
    [null, /must be an object/, undefined],
    ['ready', /must be an object/, undefined],
    [{ kind: 'notify', method: 'shutdown' }, /unknown notification/, undefined],
    [{ kind: 'notify', method: 'draft', params: { config: 'x' } }, /draft: params must be/, undefined],
    [{ kind: 'event', id: 1 }, /kind must be/, undefined],
    [{ kind: 'request', id: 0, method: 'stop' }, /id must be an integer/, undefined],
    [{ kind: 'request', id: 1.5, method: 'stop' }, /id must be an integer/, undefined],
    [{ kind: 'request', id: 3, method: 'eval', params: {} }, /unknown request "eval"/, 3],
    [{ kind: 'request', id: 3, method: '__proto__', params: {} }, /unknown request/, 3],
    [{ kind: 'request', id: 4, method: 'stop', params: {}, extra: 1 }, /unexpected field "extra"/, 4],
    [{ kind: 'request', id: 5, method: 'openFolder', params: { runId: 'r', which: 'run', path: '/etc' } }, /unexpected parameter "path"/, 5],
    [{ kind: 'request', id: 6, method: 'openFolder', params: { runId: 'r', which: 'home' } }, /"which" must be one of/, 6],
    [{ kind: 'request', id: 7, method: 'deleteRun', params: { runId: '../x' } }, /"runId" has an invalid format/, 7],
    [{ kind: 'request', id: 8, method: 'deleteRun', params: { runId: '/abs/path' } }, /invalid format/, 8],
    [{ kind: 'request', id: 9, method: 'resume', params: {} }, /missing "runId"/, 9],
    [{ kind: 'request', id: 10, method: 'start', params: { config: [] } }, /"config" must be an object/, 10],
    [{ kind: 'request', id: 11, method: 'compareMethods', params: { config, methods: ['lora', 'lora'] } }, /must not repeat/, 11],
    [{ kind: 'request', id: 12, method: 'compareMethods', params: { config, methods: ['dora'] } }, /must be one of/, 12],
    [{ kind: 'request', id: 13, method: 'generate', params: { runId: 'r', prompt: 'x'.repeat(20_001) } }, /longer than/, 13],
    [{ kind: 'request', id: 14, method: 'generate', params: { runId: 'r', prompt: 'x', maxTokens: 10_000 } }, /"maxTokens" must be an integer/, 14],
    [{ kind: 'request', id: 15, method: 'pickDataset', params: { kind: 'file', role: 'train', defaultPath: '/etc' } }, /unexpected parameter "defaultPath"/, 15],
    [{ kind: 'request', id: 16, method: 'params', params: 'x' }, /params must be an object/, 16],
    [{ kind: 'request', id: 17, method: 'generate', params: { runId: 'r', prompt: 'x', topP: 0 } }, /"topP" must be a number/, 17],
    [{ kind: 'request', id: 18, method: 'generate', params: { runId: 'r', prompt: 'x', history: [{ user: 'a' }] } }, /turn 1 must be \{ user, assistant \}/, 18],
    [{ kind: 'request', id: 19, method: 'generate', params: { runId: 'r', prompt: 'x', history: [{ user: 'a', assistant: 1 }] } }, /turn 1: must be a string/, 19],
    [{ kind: 'request', id: 20, method: 'generate', params: { runId: 'r', prompt: 'x', history: Array(51).fill({ user: 'a', assistant: 'b' }) } }, /at most 50 turns/, 20],
    [{ kind: 'request', id: 21, method: 'evaluateRun', params: { runId: '../x' } }, /invalid format/, 21],
  ];
  for (const [m, re, id] of cases) {
    const r = parseWebviewMessage(m);
    assert.equal(r.ok, false, JSON.stringify(m));
    if (r.ok) continue;
    assert.match(r.error, re, JSON.stringify(m));
    assert.equal(r.id, id, JSON.stringify(m));
  }
});

test('isHostMessage accepts responses and notifications only', () => {
  assert.ok(isHostMessage({ kind: 'response', id: 1, ok: true, result: null }));
  assert.ok(isHostMessage({ kind: 'notify', method: 'runs', params: { runs: [] } }));
  assert.ok(!isHostMessage({ kind: 'notify', method: 'runs' }));
  assert.ok(!isHostMessage({ kind: 'response', id: 'x', ok: true }));
  assert.ok(!isHostMessage('init'));
});
