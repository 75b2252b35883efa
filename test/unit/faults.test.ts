// The host's side of the project's fault corpus (test/fixtures/faults/cases.json, side "host"): protocol lines the
// trainer (or a foreign writer) may produce, CLI usage errors, export folders whose files lead outside. Each case says
// what the user must see; the table lives in docs/reliability.md (the trainer's side: trainer/tests/test_faults.py).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { ProgressRenderer } from '../../src/cli/progress';
import { readManifest, SUPPORTED_FORMAT_VERSION } from '../../src/inference/manifest';
import type { TrainerEvent } from '../../src/protocol';
import { JsonLinesParser, type ParsedLine } from '../../src/training/jsonLines';

const ROOT = path.resolve(__dirname, '..', '..');
const CORPUS = path.join(ROOT, 'test', 'fixtures', 'faults');
interface Case { id: string; side: string; run: string; data?: string; make?: string; args?: string[]; expect: Record<string, any> }
const cases = (JSON.parse(fs.readFileSync(path.join(CORPUS, 'cases.json'), 'utf8')).cases as Case[]).filter(c => c.side === 'host');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bloom-peft-faults-'));
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** Feeds bytes in chunks of every size from 1 to 17 (CRs and CRLFs split every way), as a pipe may deliver them. */
function parseChunked(bytes: Buffer, size: number): ParsedLine[] {
  const parser = new JsonLinesParser();
  const out: ParsedLine[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(...parser.push(bytes.subarray(i, i + size)));
  return [...out, ...parser.end()];
}

for (const c of cases.filter(c => c.run === 'protocol')) {
  test(`protocol: ${c.id}`, () => {
    const bytes = fs.readFileSync(path.join(CORPUS, c.data!));
    for (let size = 1; size <= 17; size++) {
      const lines = parseChunked(bytes, size);
      const events = lines.filter((l): l is Extract<ParsedLine, { kind: 'event' }> => l.kind === 'event').map(l => l.event);
      assert.deepEqual(events.map(e => e.type), c.expect.events, `chunks of ${size}`);
      assert.equal(lines.filter(l => l.kind === 'junk').length, c.expect.junk, `chunks of ${size}`);
      for (const j of lines) if (j.kind === 'junk') assert.match(j.text, /^\w+ event: \/?\S* /, 'a junk line says which field is wrong');
    }
    if (c.expect.renders) {
      // a reader that skipped the check (an older host, a hand-edited events.jsonl): the renderer must not throw
      const written: string[] = [];
      const skipped: string[] = [];
      const out = { write: (s: string) => { written.push(s); return true; }, isTTY: false } as unknown as NodeJS.WriteStream;
      const renderer = new ProgressRenderer(out, false, 0, m => skipped.push(m));
      for (const raw of bytes.toString('utf8').split('\n').filter(Boolean)) renderer.event(JSON.parse(raw) as TrainerEvent);
      assert.ok(skipped.length >= 1 && skipped.every(m => /^skipped a \w+ event that cannot be shown/.test(m)), skipped.join('\n'));
      assert.ok(written.join('').includes('the one good line'));
    }
  });
}

for (const c of cases.filter(c => c.run === 'cli')) {
  test(`cli: ${c.id}`, () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src', 'cli', 'main.ts'), ...c.args!, '--runs-dir', scratch], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, c.expect.exit, r.stderr);
    assert.ok(r.stderr.includes(c.expect.stderr), r.stderr);
  });
}

/** An export folder whose manifest is valid and whose files exist; `link` replaces one of them with a symlink to a
 *  file outside the folder (the model a cloned repository could point anywhere). */
function exportWithLink(link: 'model.onnx' | 'tokenizer.json'): string {
  const dir = fs.mkdtempSync(path.join(scratch, 'export-'));
  const outside = path.join(scratch, `outside-${link}`);
  fs.writeFileSync(outside, 'not part of the export');
  fs.writeFileSync(path.join(dir, 'model.onnx'), 'onnx bytes');
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{}');
  fs.rmSync(path.join(dir, link));
  fs.symlinkSync(outside, path.join(dir, link));
  const manifest = {
    format_version: SUPPORTED_FORMAT_VERSION, method: 'lora', base_model: 'embedded', dtype: 'float32', quantization: 'none',
    num_layers: 2, num_heads: 2, head_dim: 4, hidden_size: 8, vocab_size: 16, prefix_length: 0,
    eos_token_id: 2, pad_token_id: 3, bos_token_id: 1, template: null, instruction_tuned: false,
    files: { model: 'model.onnx', model_data: [], tokenizer: 'tokenizer.json', prefix_kv: null },
  };
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
  return dir;
}

for (const c of cases.filter(c => c.run === 'export')) {
  test(`export: ${c.id}`, () => {
    const link = c.make === 'model_symlink_outside' ? 'model.onnx' : 'tokenizer.json';
    const dir = exportWithLink(link);
    assert.throws(() => readManifest(dir), (e: Error & { code?: string; hint?: string }) =>
      e.code === c.expect.code && e.message.includes(c.expect.message) && e.message.includes(link) && !!e.hint);
    // the same folder with the real file in place of the link loads
    fs.rmSync(path.join(dir, link));
    fs.writeFileSync(path.join(dir, link), link === 'tokenizer.json' ? '{}' : 'onnx bytes');
    assert.equal(readManifest(dir).files.dir, path.resolve(dir));
  });
}

test('a link inside the export folder to another file of it is fine (judged by the real path)', () => {
  const dir = exportWithLink('model.onnx');
  fs.rmSync(path.join(dir, 'model.onnx'));
  fs.writeFileSync(path.join(dir, 'model-v2.onnx'), 'onnx bytes');
  fs.symlinkSync('model-v2.onnx', path.join(dir, 'model.onnx'));
  assert.equal(readManifest(dir).files.model, path.join(path.resolve(dir), 'model.onnx'));
});

/** The embedded tokenizer cut down to its first `keep` ids (and the merges among them): a tokenizer retrained or
 *  trimmed after training, next to a model whose vocabulary is still 7,168. */
function cutDownTokenizer(keep: number): unknown {
  const t = JSON.parse(fs.readFileSync(path.join(ROOT, 'models', 'bloom-tiny', 'tokenizer.json'), 'utf8'));
  const vocab = t.model.vocab as Record<string, number>;
  t.model.vocab = Object.fromEntries(Object.entries(vocab).filter(([, id]) => id < keep));
  const kept = (tok: string) => t.model.vocab[tok] !== undefined;
  t.model.merges = (t.model.merges as [string, string][]).filter(([a, b]) => kept(a) && kept(b) && kept(a + b));
  t.added_tokens = (t.added_tokens as { id: number }[]).filter(a => a.id < keep);
  return t;
}

for (const c of cases.filter(c => c.run === 'engine')) {
  test(`engine: ${c.id}`, async () => {
    const { completionFixture } = await import('./completion-fixture');
    const { CompletionEngine } = await import('../../src/inference/engine');
    const dir = fs.mkdtempSync(path.join(scratch, 'export-'));
    fs.cpSync(path.join(completionFixture().plain, 'export'), dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(cutDownTokenizer(300)));
    await assert.rejects(CompletionEngine.load(dir, { threads: 1 }), (e: Error & { code?: string; hint?: string }) => {
      assert.equal(e.code, c.expect.code, e.message);
      assert.match(e.message, new RegExp(c.expect.message));
      assert.ok(e.message.includes(path.join(dir, 'tokenizer.json')), e.message);
      assert.ok(e.hint?.includes('export the run again'), e.message);
      return true;
    });
  });
}

test('the tokenizer must fit the vocabulary: ids past it are refused, padding of up to max(1024, 1%) rows is fine', async () => {
  const { checkVocabulary } = await import('../../src/inference/tokenizer');
  const fits = (count: number, maxId: number, vocab: number) => {
    try {
      checkVocabulary({ count, maxId }, vocab, 'tokenizer.json', 'manifest.json');
      return 'ok';
    } catch (e) {
      return (e as Error).message;
    }
  };
  assert.equal(fits(250_680, 250_679, 250_880), 'ok'); // bloom-560m: 200 rows of padding
  assert.equal(fits(7_148, 7_147, 7_168), 'ok'); // the embedded model
  assert.equal(fits(7_168, 7_167, 7_168), 'ok');
  assert.match(fits(300, 299, 2_688), /has only 300 tokens but the model's vocabulary has 2688 \(vocab_size in manifest\.json\)/);
  assert.match(fits(240_000, 239_999, 250_880), /has only 240000 tokens/); // 10,880 short: more than 1%
  assert.match(fits(7_148, 7_147, 4_096), /produces token ids up to 7147 but the model's vocabulary has 4096 .*ids 4096\.\.7147 would index past it/);
});

test('privacy: loading onnxruntime through the engine starts no telemetry (no device id, no event database, no debug log)', async () => {
  const { completionFixture } = await import('./completion-fixture');
  const model = path.join(completionFixture().plain, 'export', 'model.onnx');
  const home = fs.mkdtempSync(path.join(scratch, 'home-'));
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, XDG_CACHE_HOME: path.join(home, '.cache') };
  delete env.ORT_DISABLE_TELEMETRY; // as a user's editor starts it
  const script = `require('./src/inference/decoder'); require('onnxruntime-node').InferenceSession.create(${JSON.stringify(model)})
    .then(s => console.log('loaded', process.pid, process.env.ORT_DISABLE_TELEMETRY, s.inputNames.length > 0))`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, env, encoding: 'utf8', timeout: 120_000 });
  const [, pid, flag, ok] = /loaded (\d+) (\S+) (\S+)/.exec(r.stdout) ?? [];
  assert.equal(ok, 'true', r.stderr);
  assert.equal(flag, '1');
  assert.equal(fs.existsSync(path.join(home, '.cache', 'Microsoft')), false, 'no ~/.cache/Microsoft/DeveloperTools/.onnxruntime');
  assert.equal(fs.existsSync(path.join(os.tmpdir(), `mat-debug-${pid}.log`)), false, 'no /tmp/mat-debug-<pid>.log');
});
