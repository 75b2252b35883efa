// End to end through the real trainer: LoRA on the embedded model with examples/code-tasks, the export
// the trainer writes at the end of the run, and the engine completing held-out prompts (inputs never seen in
// training) with what the adapter learned. The base model answers these prompts with code that runs on
// (models/bloom-tiny/README.md); the trained adapter answers exactly: "stop main row" -> "stop_main_row",
// "remove the title" -> "# TODO: remove the title", then EOS. The base model was pretrained to copy words in
// context, so a short LoRA run learns the task, not just its form.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CompletionEngine, formatPrompt } from '../../src/inference';
import { PYTHON, PY_ENV, ROOT, bundledWorker } from './inference-fixtures';

const TRAIN_STEPS = 200;

function runTrainer(runDir: string, configFile: string): Promise<{ code: number | null; stderr: string; events: any[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, ['-m', 'bloom_peft', 'train', '--run-dir', runDir, '--config', configFile], // One torch thread: on a busy 2-core machine two threads contend and run several times slower.
      { env: { ...PY_ENV, TORCH_NUM_THREADS: '1', OMP_NUM_THREADS: '1', BLOOM_PEFT_IGNORE_STDIN: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', d => (out += d));
    child.stderr.on('data', d => (err = (err + d).slice(-8000)));
    child.on('error', reject);
    child.on('close', code => {
      const events = out.split('\n').filter(l => l.startsWith('{')).map(l => { try { return JSON.parse(l); } catch { return null; } }).filter(Boolean);
      resolve({ code, stderr: err, events });
    });
  });
}

test('an adapter trained in the test answers held-out prompts with the trained answers', async t => {
  const embedded = path.join(ROOT, 'models', 'bloom-tiny', 'model.safetensors');
  assert.ok(fs.existsSync(embedded), 'the embedded model models/bloom-tiny is needed (scripts/make_model.py)');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bloom-engine-trained-'));
  let engine: CompletionEngine | undefined;
  try {
    const runDir = path.join(tmp, 'run');
    const config = {
      model: { name_or_path: 'embedded' },
      method: { name: 'lora', r: 8, alpha: 16 },
      data: { format: 'instruction', train_file: path.join(ROOT, 'examples/code-tasks/train.jsonl'), eval_split: 0 },
      training: { max_steps: TRAIN_STEPS, batch_size: 8, learning_rate: 3e-3, max_length: 64, eval_every: 0, save_every: 1000, log_every: 20, seed: 1, device: 'cpu', num_workers: 0 },
      export: { onnx: true },
    };
    const cfgFile = path.join(tmp, 'config.json');
    fs.writeFileSync(cfgFile, JSON.stringify(config));
    const t0 = performance.now();
    const { code, stderr, events } = await runTrainer(runDir, cfgFile);
    const done = events.find(e => e.type === 'done');
    assert.equal(code, 0, `trainer exited ${code}: ${JSON.stringify(events.filter(e => e.type === 'error'))}\n${stderr}`);
    assert.ok(done?.export_dir, `done event with export_dir: ${JSON.stringify(done)}`);
    t.diagnostic(`trained ${TRAIN_STEPS} steps and exported in ${((performance.now() - t0) / 1000).toFixed(0)} s; final loss ${done.metrics?.train_loss}`);

    engine = await CompletionEngine.load(runDir, { threads: 2, workerEntry: await bundledWorker() });
    assert.equal(engine.manifest.method, 'lora');
    assert.ok(engine.manifest.template, 'instruction runs record their template');
    const template = engine.manifest.template!;
    const rows = fs.readFileSync(path.join(ROOT, 'examples/code-tasks/heldout.jsonl'), 'utf8').trim().split('\n').map(l => JSON.parse(l));
    let exact = 0;
    let eos = 0;
    const wrong: string[] = [];
    for (const row of rows) {
      const r = await engine.generate(formatPrompt(template, row), { maxTokens: 24 });
      if (r.finishReason === 'eos') eos++;
      if (r.text === row.output && r.finishReason === 'eos') exact++;
      else if (wrong.length < 5) wrong.push(`${JSON.stringify(row.input)} -> ${JSON.stringify(r.text)} (${r.finishReason}; wanted ${JSON.stringify(row.output)})`);
    }
    t.diagnostic(`held-out rows answered exactly: ${exact}/${rows.length} (ended with EOS: ${eos}); misses: ${wrong.join('; ') || 'none'}`);
    // The first held-out row is the one the README's demo and the end-to-end ghost-text scenario type.
    const first = await engine.generate(formatPrompt(template, rows[0]), { maxTokens: 24 });
    assert.equal(first.text, rows[0].output, `the first held-out row ${JSON.stringify(rows[0].input)}`);
    assert.ok(exact / rows.length >= 0.7, `only ${exact}/${rows.length} held-out rows answered exactly; ${wrong.join('; ')}`);
  } finally {
    await engine?.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
