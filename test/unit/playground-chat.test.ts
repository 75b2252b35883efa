// The playground's chat and the CLI's sampling flags: the chat prompt rendered the tutorial's way (each earlier turn
// a training row: template, answer, EOS), the EOS text the tokenizer maps back to the EOS id, a seeded sampling run
// through the real engine, and `bloom-peft complete` refusing bad sampling values with a usage error.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { eosTokenText, messageFields, renderChat } from '../../src/dashboard/chat';
import { evaluationReport, main, samplingOptions, UsageError } from '../../src/cli/main';
import { CompletionEngine } from '../../src/inference';
import { TextTokenizer } from '../../src/inference/tokenizer';
import type { EvaluationEvent } from '../../src/protocol';
import { parityExports, ROOT } from './inference-fixtures';

const TEMPLATE = { prompt: 'Human: {instruction}\n{input}', response_prefix: '\n\nAssistant: ' };
const TOKENIZER = path.join(ROOT, 'models', 'bloom-tiny', 'tokenizer.json');

test('a chat renders each earlier turn as a training row (template, answer, EOS), then the question', () => {
  const eos = '</s>';
  assert.equal(renderChat(TEMPLATE, [], '你好', eos), 'Human: 你好\n\nAssistant: ');
  const text = renderChat(TEMPLATE, [{ user: '把下面的词语用顿号连起来\n父亲 武汉', assistant: '父亲、武汉 ' }, { user: 'Say hi', assistant: 'hi' }], '再来一次', eos);
  assert.equal(text, 'Human: 把下面的词语用顿号连起来\n父亲 武汉\n\nAssistant: 父亲、武汉</s>Human: Say hi\n\nAssistant: hi</s>Human: 再来一次\n\nAssistant: ');
  assert.deepEqual(messageFields('instruction\nthe input\n'), { instruction: 'instruction', input: 'the input', prompt: 'instruction\nthe input' });
});

test('the EOS text comes from tokenizer.json and encodes back to the EOS id between turns', () => {
  const json = JSON.parse(fs.readFileSync(TOKENIZER, 'utf8'));
  const config = JSON.parse(fs.readFileSync(path.join(ROOT, 'models', 'bloom-tiny', 'config.json'), 'utf8'));
  const eosId: number = config.eos_token_id;
  const eos = eosTokenText(json, eosId);
  assert.ok(eos.length > 0, 'the EOS token is an added token of tokenizer.json');
  assert.equal(eosTokenText(json, null), '');
  const ids = TextTokenizer.fromJSON(json).encode(renderChat(TEMPLATE, [{ user: 'a', assistant: 'b' }, { user: 'c', assistant: 'd' }], 'e', eos));
  assert.equal(ids.filter(i => i === eosId).length, 2, 'one EOS after each finished turn');
});

test('sampling flags: defaults, valid values, and every bad value a usage error naming the flag', async () => {
  assert.deepEqual(samplingOptions({}), { maxTokens: 64, temperature: 0, topP: 1, seed: undefined });
  assert.deepEqual(samplingOptions({ 'max-tokens': '12', temperature: '0.8', 'top-p': '0.9', seed: '7' }), { maxTokens: 12, temperature: 0.8, topP: 0.9, seed: 7 });
  const bad: [Record<string, string>, RegExp][] = [
    [{ temperature: '-3' }, /--temperature "-3"/], [{ temperature: 'hot' }, /--temperature/], [{ 'max-tokens': 'abc' }, /--max-tokens "abc"/],
    [{ 'max-tokens': '0' }, /--max-tokens/], [{ 'max-tokens': '2.5' }, /--max-tokens/], [{ 'top-p': '0' }, /--top-p "0"/],
    [{ 'top-p': '1.5' }, /--top-p/], [{ seed: '-1' }, /--seed/], [{ seed: 'x' }, /--seed/], [{ temperature: '' }, /--temperature/],
  ];
  for (const [values, message] of bad) assert.throws(() => samplingOptions(values), (e: Error) => e instanceof UsageError && message.test(e.message), JSON.stringify(values));
  // through the command line: refused before any run is looked up (the run does not even exist)
  await assert.rejects(main(['complete', '--run', 'no-such-run', '--runs-dir', path.join(ROOT, 'no-such-dir'), '--temperature=-3', 'hi']), UsageError);
  await assert.rejects(main(['complete', '--run', 'no-such-run', '--top-p', '2', 'hi']), UsageError);
});

test('the CLI prints an evaluation as its sentence and a few rows', () => {
  const e: EvaluationEvent = {
    v: 1, type: 'evaluation', time: 1, step: 30, rows: 4, exact: 0, exact_match: 0, rouge_l: 0.5, base: { exact: 0, exact_match: 0, rouge_l: 0.4 },
    verdict: 'no_exact_answers', message: 'Answered 0 of 4 held-out rows exactly (ROUGE-L 0.50)',
    samples: [{ prompt: 'Human: x\n\nAssistant: ', reference: '父亲、武汉', answer: '父亲', base_answer: 'zz', exact: false, rouge_l: 0.57 }],
  };
  const text = evaluationReport(e);
  assert.match(text, /^Answered 0 of 4/);
  assert.match(text, /reference: 父亲、武汉/);
  assert.match(text, /answer: {4}父亲 \(ROUGE-L 0\.57\)/);
  assert.match(text, /Human: x\\n\\nAssistant: /); // one line per field
});

let engine: CompletionEngine;
before(async () => {
  const exp = parityExports().find(e => e.ref.method === 'prefix_tuning') ?? parityExports()[0];
  engine = await CompletionEngine.load(exp.dir, { threads: 1 });
});
after(async () => { await engine?.dispose(); });

test('seeded sampling through the real engine: the same seed gives the same text, other seeds other texts', async () => {
  const prompt = renderChat(TEMPLATE, [], 'Write a story', '');
  const sample = async (seed: number) => (await engine.generate(prompt, { maxTokens: 12, temperature: 1.5, topP: 0.95, seed, ignoreEos: true })).text;
  const first = await sample(7);
  assert.equal(await sample(7), first);
  const greedy = (await engine.generate(prompt, { maxTokens: 12, temperature: 0, ignoreEos: true })).text;
  const others = await Promise.all([1, 2, 3, 4].map(sample));
  assert.ok(others.some(t => t !== first), 'four other seeds all gave the same text');
  assert.ok([first, ...others].some(t => t !== greedy), 'sampling never left the greedy path');
});
