// Pure chart helpers (webview/chart-scale.ts) and the dataset field detection behind the column mapping.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { datasetFields } from '../../src/dashboard/dataset-fields';
import { lastValue, robustRange } from '../../webview/chart-scale';

test('the loss axis is not dominated by the first steps', () => {
  // a typical fine-tuning curve: 9.5 at step 1, settling around 1.0-1.4
  const loss = [9.5, 6.1, 3.8, ...Array.from({ length: 60 }, (_, i) => 1.4 - i / 150)];
  const [lo, hi] = robustRange([loss])!;
  assert.ok(lo < Math.min(...loss) && lo > 0.8, `bottom ${lo}`);
  assert.ok(hi < 2.5, `top ${hi}: the settled part fills the chart`);
  // a curve without outliers keeps its full range
  const smooth = Array.from({ length: 40 }, (_, i) => 3 - i / 20);
  const [l2, h2] = robustRange([smooth])!;
  assert.ok(l2 < 1.05 && h2 > 3, `${l2}..${h2}`);
  // eval points count, gaps and non-finite values do not
  assert.deepEqual(robustRange([[null, NaN], []]), null);
  assert.ok(robustRange([[2, null, 1.9], [1.5]])![0] < 1.5);
});

test('lastValue skips trailing gaps', () => {
  assert.equal(lastValue([1, 2, null, undefined]), 2);
  assert.equal(lastValue([]), null);
});

test('dataset fields come from the first JSON object, JSON lines or the CSV header', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fields-'));
  try {
    const write = (name: string, text: string) => { const p = path.join(dir, name); fs.writeFileSync(p, text); return p; };
    assert.deepEqual(datasetFields(write('a.jsonl', '\n{"question": "q", "answer": "a"}\n{"x": 1}\n')), ['question', 'answer']);
    assert.deepEqual(datasetFields(write('b.json', '[\n  {"instruction": "i", "input": "{not json", "output": "o"},\n  {"broken": ')), ['instruction', 'input', 'output']);
    assert.deepEqual(datasetFields(write('c.csv', '\uFEFFprompt,"the, completion"\nhi,there\n')), ['prompt', 'the, completion']);
    assert.deepEqual(datasetFields(write('d.jsonl', 'not json at all\n')), []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
