// The pure parts of the palette flow and of the progress displays: configs built from quick-pick answers
// validate against the shared schema for all seven methods; data formats are inferred from the file;
// status bar / notification text; the CLI's progress bar (TTY redraw vs throttled plain lines) and table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runsTable } from '../../src/cli/main';
import { formatDuration, progressLine, ProgressRenderer } from '../../src/cli/progress';
import { METHOD_NAMES, validateConfig, type TrainerEvent } from '../../src/protocol';
import { formatEta, progressText } from '../../src/training/format';
import { buildConfig, inferDataFormat, METHOD_PICKS } from '../../src/training/quickConfig';
import type { RunInfo, RunSummary } from '../../src/training/types';

const ROOT = path.resolve(__dirname, '..', '..');

test('quick pick: seven methods with descriptions, each giving a config the schema accepts', () => {
  assert.deepEqual(METHOD_PICKS.map(m => m.name).sort(), [...METHOD_NAMES].sort());
  for (const m of METHOD_PICKS) {
    assert.ok(m.detail.length > 20, m.name);
    const config = buildConfig(m.name, path.join(ROOT, 'examples', 'code-tasks', 'train.jsonl'), 'embedded');
    assert.deepEqual(validateConfig(config), [], m.name);
  }
});

test('data format inferred from the file: alpaca rows, prompt/completion rows, code folders and text files', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bloom-peft-fmt-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string) => { fs.writeFileSync(path.join(dir, name), text); return path.join(dir, name); };
  assert.equal(inferDataFormat(path.join(ROOT, 'examples', 'code-tasks', 'train.jsonl')), 'instruction');
  assert.equal(inferDataFormat(path.join(ROOT, 'examples', 'code-tasks', 'train.csv')), 'instruction');
  assert.equal(inferDataFormat(write('pc.jsonl', '{"prompt": "a", "completion": "b"}\n')), 'completion');
  assert.equal(inferDataFormat(write('pc.csv', 'prompt,completion\na,b\n')), 'completion');
  assert.equal(inferDataFormat(path.join(ROOT, 'examples', 'code-corpus')), 'text');
  assert.equal(inferDataFormat(write('notes.txt', 'hello')), 'text');
  assert.equal(buildConfig('lora', path.join(ROOT, 'examples', 'code-corpus'), 'embedded').data.format, 'text');
});

test('status bar text: step/total, loss, ETA', () => {
  const info = { step: 12, totalSteps: 100, loss: 1.23456, etaS: 125 } as RunInfo;
  assert.equal(progressText(info), 'step 12/100 · loss 1.235 · ETA 2m 05s');
  assert.equal(progressText({ step: 0 } as RunInfo), 'step 0');
  assert.equal(formatEta(3 * 3600 + 7 * 60), '3h 07m');
  assert.equal(formatEta(null), '');
  assert.equal(formatEta(Number.NaN), '');
});

class Sink {
  text = '';
  isTTY: boolean;
  columns = 100;
  constructor(tty: boolean) { this.isTTY = tty; }
  write(s: string) { this.text += s; return true; }
}

const progress = (step: number, total = 10): TrainerEvent =>
  ({ v: 1, type: 'progress', time: 0, step, total_steps: total, epoch: 0, loss: 2 - step / 10, lr: 1e-3, tokens_per_s: 1234.4, eta_s: 90 - step });

test('CLI progress: redraws one line on a TTY, throttled plain lines otherwise, and closes the bar before other lines', () => {
  assert.equal(progressLine({ step: 5, total_steps: 10, loss: 1.5, tokens_per_s: 999.6, eta_s: 61 }, 10), '[█████░░░░░]   5/10  loss 1.5000  1,000 tok/s  ETA 1:01');
  assert.equal(formatDuration(3725), '1:02:05');

  const tty = new Sink(true);
  const r = new ProgressRenderer(tty as unknown as NodeJS.WriteStream);
  for (let s = 1; s <= 10; s++) r.event(progress(s));
  r.event({ v: 1, type: 'eval', time: 0, step: 10, eval_loss: 1.25 });
  assert.equal(tty.text.split('\r\x1b[2K').length - 1, 10);
  assert.match(tty.text, /10\/10[^\n]*\neval @ step 10: loss 1\.2500\n$/);

  const plain = new Sink(false);
  const p = new ProgressRenderer(plain as unknown as NodeJS.WriteStream, false, 60_000);
  for (let s = 1; s <= 10; s++) p.event(progress(s));
  p.event({ v: 1, type: 'future_event', time: 0 } as unknown as TrainerEvent); // ignored
  const lines = plain.text.trim().split('\n');
  assert.deepEqual(lines.map(l => /(\d+)\/10/.exec(l)?.[1]), ['1', '10'], 'first and last step only within the throttle window');
  assert.ok(!plain.text.includes('\r'));
});

test('runs table lines up columns and says where it looked when empty', () => {
  assert.equal(runsTable([], '/x/runs'), 'no runs in /x/runs');
  const run = (over: Partial<RunSummary>): RunSummary => ({ id: 'r', dir: '/r', status: 'completed', step: 4, owned: false, resumable: false, ...over });
  const table = runsTable([
    run({ id: '20250101-000000-lora', method: 'lora', totalSteps: 4, finalTrainLoss: 1.5, trainablePercent: 2.5 }),
    run({ id: '20250101-000001-ia3-long-name', status: 'failed', method: 'ia3', resumable: true }),
  ], '/x');
  const [head, a, b] = table.split('\n');
  assert.equal(head.indexOf('STATUS'), a.indexOf('completed'));
  assert.equal(a.indexOf('completed'), b.indexOf('failed'));
  assert.match(a, /lora\s+4\/4\s+1\.5000\s+-\s+-\s+-\s+2\.500%/); // eval loss, held-out exact, tok/s
  const evaluated = runsTable([run({ method: 'lora', evaluation: { v: 1, type: 'evaluation', time: 1, rows: 32, exact: 29, exact_match: 29 / 32, rouge_l: 0.97, verdict: 'ok', message: '' } })], '/x');
  assert.match(evaluated.split('\n')[1], /lora\s+4\s+-\s+-\s+29\/32\s/);
});
