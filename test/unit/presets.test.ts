// Presets (schemas/presets.json) as the CLI, the palette quick pick and the dashboard build them: every preset and
// method gives a config the schema accepts; shipped data resolve against the extension, the tutorial's against the
// user's folder; `bloom-peft train --preset` refuses unknown names as usage errors; the dashboard's presetConfig
// counts the preset's shipped files as picked; a save_to_disk folder is instruction rows, not a text corpus, and
// its column names come from its features.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { main, UsageError } from '../../src/cli/main';
import { DashboardController } from '../../src/dashboard/controller';
import { datasetFields } from '../../src/dashboard/dataset-fields';
import { validateConfig, type TrainingConfig } from '../../src/protocol';
import type { HostToWebview } from '../../src/protocol/messages';
import { findPreset, presetConfig, PRESETS } from '../../src/training/presets';
import { buildPresetConfig, inferDataFormat } from '../../src/training/quickConfig';
import { echoEngine, FakeHost, FakeTraining, ROOT } from '../browser/fakes';

const roots = { extension: ROOT, workspace: '/home/user/project' };

test('every preset and method builds a valid config; data paths resolve against the preset\'s root', () => {
  assert.deepEqual(PRESETS.map(p => p.id), ['quick-demo', 'tutorial']);
  for (const preset of PRESETS) {
    for (const method of Object.keys(preset.methods) as Array<TrainingConfig['method']['name']>) {
      const config = presetConfig(preset, method, roots);
      assert.deepEqual(validateConfig(config), [], `${preset.id}/${method}`);
      assert.equal(config.method.name, method);
    }
  }
  const demo = presetConfig(findPreset('Quick demo (embedded model)')!, undefined, roots);
  assert.equal(demo.method.name, 'lora');
  assert.ok(fs.existsSync(demo.data.train_file!) && fs.existsSync(demo.data.eval_file!), demo.data.train_file);
  const tutorial = presetConfig(findPreset('tutorial')!, 'prompt_tuning', roots);
  assert.equal(tutorial.model.name_or_path, 'Langboat/bloom-1b4-zh');
  assert.equal(tutorial.data.train_file, path.join('/home/user/project', 'alpaca_data_zh'));
  assert.deepEqual(tutorial.method, { name: 'prompt_tuning', num_virtual_tokens: 7, init: 'text', init_text: '下面是一段人与机器人的对话。' });
  assert.deepEqual({ ...tutorial.training }, { epochs: 1, batch_size: 1, grad_accum: 8, max_length: 256, eval_every: 0, save_every: 500, log_every: 10 });
  assert.deepEqual(tutorial.template, { prompt: 'Human: {instruction}\n{input}', response_prefix: '\n\nAssistant: ', add_eos: true, mask_prompt: true });
  // building a config never changes the preset itself
  assert.equal(findPreset('tutorial')!.config.data.train_file, 'alpaca_data_zh');
});

test('bloom-peft train --preset NAME [--method M] --print; unknown names are usage errors', async () => {
  const out: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((s: string) => { out.push(s); return true; }) as typeof process.stdout.write;
  try {
    assert.equal(await main(['train', '--preset', 'tutorial', '--method', 'p_tuning', '--print']), 0);
  } finally {
    process.stdout.write = write;
  }
  const config = JSON.parse(out.join(''));
  assert.deepEqual(config.method, { name: 'p_tuning', num_virtual_tokens: 10, encoder_type: 'MLP' });
  assert.equal(config.data.train_file, path.join(process.cwd(), 'alpaca_data_zh'));
  await assert.rejects(main(['train', '--preset', 'nope']), (e: Error) => e instanceof UsageError && /quick-demo, tutorial/.test(e.message));
  await assert.rejects(main(['train', '--preset', 'tutorial', '--method', 'adapter']), UsageError);
  await assert.rejects(main(['train', '--preset', 'tutorial', '--config', 'x.json']), UsageError);
  await assert.rejects(main(['train', '--config', 'x.json', '--method', 'lora']), UsageError);
});

test('save_to_disk folders are instruction rows; the quick pick puts the chosen one in the tutorial preset', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bloom-peft-saved-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  for (const [name, marker] of [['plain', 'dataset_info.json'], ['dict', 'dataset_dict.json']]) {
    fs.mkdirSync(path.join(dir, name));
    fs.writeFileSync(path.join(dir, name, marker), '{}');
    assert.equal(inferDataFormat(path.join(dir, name)), 'instruction', name);
  }
  // the column mapping's field names: the Dataset's features, or the DatasetDict's train split's
  const features = JSON.stringify({ features: { instruction: { dtype: 'string' }, input: { dtype: 'string' }, output: { dtype: 'string' } } });
  fs.writeFileSync(path.join(dir, 'plain', 'dataset_info.json'), features);
  fs.writeFileSync(path.join(dir, 'dict', 'dataset_dict.json'), JSON.stringify({ splits: ['test', 'train'] }));
  fs.mkdirSync(path.join(dir, 'dict', 'train'));
  fs.writeFileSync(path.join(dir, 'dict', 'train', 'dataset_info.json'), features);
  assert.deepEqual(datasetFields(path.join(dir, 'plain')), ['instruction', 'input', 'output']);
  assert.deepEqual(datasetFields(path.join(dir, 'dict')), ['instruction', 'input', 'output']);
  assert.deepEqual(datasetFields(dir), []);
  const config = buildPresetConfig(findPreset('tutorial')!, 'prefix_tuning', roots, path.join(dir, 'plain'));
  assert.deepEqual(config.data, { format: 'instruction', train_file: path.join(dir, 'plain'), eval_split: 0.01 });
  assert.deepEqual(validateConfig(config), []);
});

test('dashboard presetConfig: shipped files count as picked, the tutorial leaves its dataset to the user', async () => {
  const training = new FakeTraining();
  const controller = new DashboardController(training, new FakeHost({}), { trace() {}, info() {}, warn() {}, error() {} }, echoEngine);
  const sent: HostToWebview[] = [];
  controller.attach(m => sent.push(JSON.parse(JSON.stringify(m))));
  let id = 0;
  const call = async (method: string, params: unknown) => {
    const myId = ++id;
    await controller.handle({ kind: 'request', id: myId, method, params } as never);
    const r = sent.find(m => m.kind === 'response' && m.id === myId) as Extract<HostToWebview, { kind: 'response' }>;
    if (!r.ok) throw Object.assign(new Error(r.error.message), r.error);
    return r.result as never;
  };
  const demo: TrainingConfig = await call('presetConfig', { id: 'quick-demo', method: 'prefix_tuning' });
  assert.equal(demo.method.name, 'prefix_tuning');
  assert.equal(demo.data.train_file, path.join(ROOT, 'examples', 'code-tasks', 'train.jsonl'));
  const preview: { rows: unknown[]; trainRows: number } = await call('preview', { config: demo });
  assert.ok(preview.rows.length > 0 && preview.trainRows > 0); // not refused as an unpicked path
  const tutorial: TrainingConfig = await call('presetConfig', { id: 'tutorial', method: 'full' });
  assert.equal(tutorial.method.name, 'full');
  assert.equal(tutorial.data.train_file, undefined);
  await assert.rejects(call('presetConfig', { id: 'nope' }), /no preset "nope"/);
  await assert.rejects(call('openFolder', { runId: 'r1', which: 'hf-other' }), /must be one of/);
});
