// Unit tests of each pure pipeline step: prefilter, prompt building, postprocessing, cache, debounce.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { languageEnabled, midWord, prefilter } from '../../src/completion/prefilter';
import { applyHeal, buildPrompt, clipPrefix, estimateTokens, renderTemplate, templateLead } from '../../src/completion/prompt';
import {
  cutAtStops, dropBlank, dropDuplicate, isComplete, postprocess, stopAtBlockEnd, stopAtLineEnd, trimRepetition, trimSuffixOverlap,
} from '../../src/completion/postprocess';
import { CompletionCache, KEY_CHARS } from '../../src/completion/cache';
import { Debouncer } from '../../src/completion/debounce';
import { DEFAULT_SETTINGS, type AdapterInfo, type CompletionRequest } from '../../src/completion/types';
import { statusText } from '../../src/completion/status-text';

const TEMPLATE = { prompt: 'Human: {instruction}\n{input}', response_prefix: '\n\nAssistant: ' };
const plain: AdapterInfo = { key: 'plain', template: TEMPLATE, instructionTuned: false };
const tuned: AdapterInfo = { key: 'tuned', template: TEMPLATE, instructionTuned: true };
const req = (prefix: string, suffix = '', extra: Partial<CompletionRequest> = {}): CompletionRequest => ({ uri: 'file:///a.py', languageId: 'python', prefix, suffix, ...extra });

// ---- prefilter

test('prefilter: disabled, language off, large file, mid-word', () => {
  assert.equal(prefilter(req('x = '), { ...DEFAULT_SETTINGS, enabled: false }), 'disabled');
  assert.equal(prefilter(req('x = '), { ...DEFAULT_SETTINGS, languages: { '*': true, python: false } }), 'language');
  assert.equal(prefilter(req('x = ', '', { documentLength: 2_000_000 }), DEFAULT_SETTINGS), 'large-file');
  assert.equal(prefilter(req('x = ', '', { documentLength: 500 }), DEFAULT_SETTINGS, 100), 'large-file');
  assert.equal(prefilter(req('def fo', 'o(x):\n'), DEFAULT_SETTINGS), 'mid-word');
  assert.equal(prefilter(req('x = ', 'foo\n'), DEFAULT_SETTINGS), 'mid-word');
  assert.equal(prefilter(req('x = '), DEFAULT_SETTINGS), undefined);
});

test('prefilter: closers and punctuation after the cursor still complete', () => {
  assert.equal(midWord(')\nnext line'), false);
  assert.equal(midWord('"]);  \n'), false);
  assert.equal(midWord('\r\nfoo'), false);
  assert.equal(midWord(''), false);
  assert.equal(midWord('bar)'), true);
});

test('languageEnabled: own entry wins, then "*", then on', () => {
  assert.equal(languageEnabled({ '*': false, python: true }, 'python'), true);
  assert.equal(languageEnabled({ '*': false, python: true }, 'go'), false);
  assert.equal(languageEnabled({ markdown: false }, 'go'), true);
  assert.equal(languageEnabled(undefined, 'go'), true);
});

// ---- prompt

test('prompt: a short prefix is the prompt as is', () => {
  const p = buildPrompt(req('def add(a, b):\n    return a'), plain, { tokenBudget: 100 })!;
  assert.deepEqual(p, { prompt: 'def add(a, b):\n    return a', lead: '', stop: [], kind: 'prefix' });
  assert.equal(buildPrompt(req('   \n'), plain, { tokenBudget: 100 }), undefined);
});

test('prompt: token healing moves trailing spaces from the prompt to the generation', () => {
  const p = buildPrompt(req('def add(a, b):\n    return '), plain, { tokenBudget: 100 })!;
  assert.equal(p.prompt, 'def add(a, b):\n    return');
  assert.equal(p.heal, ' ');
  const q = buildPrompt(req('def add(a, b):\n    '), plain, { tokenBudget: 100 })!;
  assert.equal(q.prompt, 'def add(a, b):\n');
  assert.equal(q.heal, '    ');
  assert.equal(applyHeal(' a + b', ' '), 'a + b');
  assert.equal(applyHeal('    return a', '    '), 'return a');
  assert.equal(applyHeal('      deeper', '    '), '  deeper');
  assert.equal(applyHeal('  x', '    '), 'x', 'the model wanted less indentation: keep the text');
  assert.equal(applyHeal('(x)', ' '), '(x)');
  assert.equal(applyHeal('  ', '    '), '');
  assert.equal(applyHeal('abc', undefined), 'abc');
  // Template prompts are tokenized as the trainer did (prompt apart from the answer): no healing there.
  assert.equal(buildPrompt(req('Human: hi\n\nAssistant: '), tuned, { tokenBudget: 100 })!.heal, undefined);
});

test('prompt: a long prefix is clipped to the token budget at a line start', () => {
  const lines = Array.from({ length: 400 }, (_, i) => `line_${i} = ${i}`);
  const prefix = lines.join('\n') + '\nresult = ';
  const count = (t: string) => t.split(/\s+/).filter(Boolean).length; // a word counter as the "tokenizer"
  const p = buildPrompt(req(prefix), { ...plain, countTokens: count }, { tokenBudget: 300 })!;
  assert.ok(count(p.prompt) <= 300, `${count(p.prompt)} tokens`);
  assert.ok(count(p.prompt) >= 150, 'uses a good part of the budget');
  assert.ok(p.prompt.endsWith('\nresult ='));
  assert.match(p.prompt, /^line_\d+ = \d+\n/, 'starts at a line start');
});

test('prompt: the clipped window start stays put while the user types (KV reuse)', () => {
  const body = Array.from({ length: 300 }, (_, i) => `value_${i} = compute(${i})`).join('\n') + '\n';
  let changes = 0;
  let last: string | undefined;
  let typed = '';
  for (const ch of 'total = sum(values) + sum(other_values) + compute_more(x)'.repeat(2)) {
    typed += ch;
    const prefix = body + typed;
    const start = clipPrefix(prefix, prefix.length, 400, t => Math.ceil(t.length / 2.5)).slice(0, 30);
    if (last !== undefined && start !== last) changes++;
    last = start;
  }
  // 110 characters typed; the start may move once per grid step (a fifth of the budget, ~240 chars) at most.
  assert.ok(changes <= 1, `${changes} changes`);
});

test('prompt: a prefix too dense for the estimate is still cut to the budget', () => {
  const prefix = 'x'.repeat(5000); // no newlines at all
  const out = clipPrefix(prefix, prefix.length, 100, t => t.length); // 1 char = 1 token
  assert.ok(out.length <= 100 && out.length > 0);
});

test('template helpers render like the trainer (stripped prompt + response prefix)', () => {
  assert.equal(templateLead(TEMPLATE), 'Human: ');
  assert.equal(renderTemplate(TEMPLATE, { instruction: 'Convert to snake_case', input: 'Reset User' }), 'Human: Convert to snake_case\nReset User\n\nAssistant: ');
  assert.equal(renderTemplate(TEMPLATE, { instruction: 'Say hi', input: '' }), 'Human: Say hi\n\nAssistant: ');
  assert.equal(renderTemplate({ prompt: '{prompt}', response_prefix: ' =>' }, { prompt: 'a' }), 'a =>');
});

test('prompt (instruction-tuned): text ending with the response prefix is used as is, from the last turn', () => {
  const prefix = 'notes\n\nHuman: Old\n\nAssistant: old answer\n\nHuman: Convert to snake_case\nReset User\n\nAssistant: ';
  const p = buildPrompt(req(prefix), tuned, { tokenBudget: 200 })!;
  assert.equal(p.kind, 'template-answer');
  assert.equal(p.prompt, 'Human: Convert to snake_case\nReset User\n\nAssistant: ');
  assert.equal(p.lead, '');
  assert.deepEqual(p.stop, ['\nHuman:']);
  // Part of the answer typed already: still the answer turn, continued.
  assert.equal(buildPrompt(req(prefix + 'reset_'), tuned, { tokenBudget: 200 })!.prompt, 'Human: Convert to snake_case\nReset User\n\nAssistant: reset_');
});

test('prompt (instruction-tuned): "Assistant:" without the trailing space is completed for the model and shown', () => {
  const p = buildPrompt(req('Human: Say hi\n\nAssistant:'), tuned, { tokenBudget: 200 })!;
  assert.equal(p.prompt, 'Human: Say hi\n\nAssistant: ');
  assert.equal(p.lead, ' ');
});

test('prompt (instruction-tuned): the current paragraph is the instruction; the answer goes on the next line', () => {
  const p = buildPrompt(req('# header\n\nConvert to snake_case\nReset User', '\n\nmore'), tuned, { tokenBudget: 200 })!;
  assert.equal(p.kind, 'template-instruction');
  assert.equal(p.prompt, 'Human: Convert to snake_case\nReset User\n\nAssistant: ');
  assert.equal(p.lead, '\n');
  // Written in template form: the answer follows the response prefix.
  const q = buildPrompt(req('Human: Write a TODO comment\nremove the title'), tuned, { tokenBudget: 200 })!;
  assert.equal(q.prompt, 'Human: Write a TODO comment\nremove the title\n\nAssistant: ');
  assert.equal(q.lead, '\n\nAssistant: ');
  // Not at the end of a line, or on a blank line: nothing.
  assert.equal(buildPrompt(req('Convert to snake_case', ' x'), tuned, { tokenBudget: 200 }), undefined);
  assert.equal(buildPrompt(req('Convert to snake_case\n'), tuned, { tokenBudget: 200 }), undefined);
});

test('prompt (instruction-tuned): a huge instruction keeps the frame and the instruction, clips the input', () => {
  const input = Array.from({ length: 200 }, (_, i) => `word${i}`).join(' ');
  const p = buildPrompt(req('Summarize\n' + input), { ...tuned, countTokens: estimateTokens }, { tokenBudget: 120, maxInstructionLines: 50 })!;
  assert.ok(p.prompt.startsWith('Human: Summarize\n'));
  assert.ok(p.prompt.endsWith('\n\nAssistant: '));
  assert.ok(estimateTokens(p.prompt) <= 130, `${estimateTokens(p.prompt)}`);
});

test('prompt: an adapter without instruction tuning completes the raw prefix even with a template', () => {
  assert.equal(buildPrompt(req('Human: hi\n\nAssistant: '), plain, { tokenBudget: 100 })!.kind, 'prefix');
  assert.equal(buildPrompt(req('x = 1'), { key: 'k', template: null, instructionTuned: true }, { tokenBudget: 100 })!.kind, 'prefix');
});

// ---- postprocess

test('cutAtStops cuts at the earliest stop', () => {
  assert.equal(cutAtStops('abc\nHuman: x', ['\nHuman:']), 'abc');
  assert.equal(cutAtStops('a;b|c', ['|', ';']), 'a');
  assert.equal(cutAtStops('abc', []), 'abc');
});

test('stopAtLineEnd keeps the rest of the line, or the next line after a finished line', () => {
  assert.equal(stopAtLineEnd('b + c\nreturn x', 'x = a + '), 'b + c');
  assert.equal(stopAtLineEnd('\n    return a + b\n\nfoo', 'def add(a, b):'), '\n    return a + b');
  assert.equal(stopAtLineEnd('\n\n   \nfoo', 'x = 1'), '');
  assert.equal(stopAtLineEnd('\nfoo', '    '), '', 'on a blank line a leading newline means nothing to add');
  assert.equal(stopAtLineEnd('abc\r\ndef', ''), 'abc');
});

test('stopAtBlockEnd stops at a blank line or a dedent, keeping a closing bracket', () => {
  assert.equal(stopAtBlockEnd('\n    a = 1\n    return a\n\ndef g():', 'def f():'), '\n    a = 1\n    return a');
  assert.equal(stopAtBlockEnd('x = 1\n    y = 2\nz = 3', '    '), 'x = 1\n    y = 2');
  assert.equal(stopAtBlockEnd('a();\n  b();\n}\nfunction g() {', '  '), 'a();\n  b();\n}');
  assert.equal(stopAtBlockEnd('one line  ', ''), 'one line');
});

test('trimRepetition drops repeated lines and looping tails, keeps legitimate runs', () => {
  assert.equal(trimRepetition('a = 1\nb = 2\nb = 2\nb = 2'), 'a = 1\nb = 2');
  assert.equal(trimRepetition('foo bar foo bar foo bar foo bar '), 'foo bar ');
  assert.equal(trimRepetition('# ------------------------'), '# ------------------------');
  assert.equal(trimRepetition('x = 1000000000000'), 'x = 1000000000000');
  assert.equal(trimRepetition('ok'), 'ok');
});

test('trimSuffixOverlap drops what the line already has after the cursor', () => {
  assert.equal(trimSuffixOverlap('a, b)', ')\n'), 'a, b');
  assert.equal(trimSuffixOverlap('"name"]);', '"]);'), '"name');
  assert.equal(trimSuffixOverlap('abc', '\nabc'), 'abc', 'only the rest of the line counts');
});

test('dropBlank and dropDuplicate', () => {
  assert.equal(dropBlank('  \n\t'), '');
  assert.equal(dropBlank(' x'), ' x');
  assert.equal(dropDuplicate('return x', 'def f(x):\n    ', '\n    return x\n'), '');
  assert.equal(dropDuplicate('return x', 'def f(x):\n    return x\n    ', ''), '');
  assert.equal(dropDuplicate('return y', 'def f(x):\n    return x\n    ', ''), 'return y');
});

test('postprocess chains the steps by mode', () => {
  const ctx = { prefix: 'total = ', suffix: ')\n', mode: 'singleLine' as const };
  assert.equal(postprocess('sum(a)  \nprint(total)', ctx), 'sum(a');
  assert.equal(postprocess('   \n', ctx), '');
  assert.equal(postprocess('\n    a = 1\n    b = 2\n\nx', { prefix: 'def f():', suffix: '', mode: 'multiLine' }), '\n    a = 1\n    b = 2');
  assert.equal(postprocess('answer\nHuman: next', { prefix: 'Assistant: ', suffix: '', mode: 'multiLine', stop: ['\nHuman:'] }), 'answer');
});

test('isComplete says when streaming may stop without changing the result', () => {
  const s = { prefix: 'x = ', suffix: '', mode: 'singleLine' as const };
  assert.equal(isComplete('1 +', s), false);
  assert.equal(isComplete('1 + 2\n', s), true);
  const after = { prefix: 'def f():', suffix: '', mode: 'singleLine' as const };
  assert.equal(isComplete('\n', after), false, 'a leading newline alone is not the end');
  assert.equal(isComplete('\n    return 1', after), false);
  assert.equal(isComplete('\n    return 1\n', after), true);
  const m = { prefix: 'def f():', suffix: '', mode: 'multiLine' as const };
  assert.equal(isComplete('\n    a = 1\n', m), false);
  assert.equal(isComplete('\n    a = 1\n\n', m), true);
  assert.equal(isComplete('x\n  a\n', { prefix: '    ', suffix: '', mode: 'multiLine' }), true, 'dedent known once the line has content');
  assert.equal(isComplete('foo\nHum', { ...m, stop: ['\nHuman:'] }), false);
  assert.equal(isComplete('foo\nHuman:', { ...m, stop: ['\nHuman:'] }), true);
});

// ---- cache

test('cache: exact hit, typed-through hit, misses', () => {
  const c = new CompletionCache(10);
  c.set('s', 'x = ', 4, 'compute(a, b)');
  assert.deepEqual(c.get('s', 'x = ', 4), { completion: 'compute(a, b)', typed: 0 });
  assert.deepEqual(c.get('s', 'x = comp', 8), { completion: 'ute(a, b)', typed: 4 });
  assert.equal(c.get('s', 'x = compute(a', 13)?.completion, ', b)');
  assert.equal(c.get('s', 'x = compx', 9), undefined, 'typed something else');
  assert.equal(c.get('s', 'x = compute(a, b)', 17), undefined, 'typed it all: nothing left');
  assert.equal(c.get('other', 'x = ', 4), undefined, 'other scope');
  assert.equal(c.get('s', 'y = ', 4), undefined);
});

test('cache: typed-through works on windowed prefixes of long documents', () => {
  const c = new CompletionCache(10);
  const doc = 'a'.repeat(KEY_CHARS * 3) + '\nvalue = ';
  c.set('s', doc.slice(-8000), doc.length, 'int(x)');
  const typed = doc + 'in';
  assert.deepEqual(c.get('s', typed.slice(-8000), typed.length), { completion: 't(x)', typed: 2 });
});

test('cache: least recently used entries go first', () => {
  const c = new CompletionCache(2);
  c.set('s', 'a', 1, 'A');
  c.set('s', 'b', 1, 'B');
  c.get('s', 'a', 1);
  c.set('s', 'c', 1, 'C');
  assert.equal(c.size, 2);
  assert.equal(c.get('s', 'b', 1), undefined);
  assert.ok(c.get('s', 'a', 1));
  assert.ok(c.get('s', 'c', 1));
});

// ---- debounce

test('debounce: only the latest of a burst survives; abort resolves false', async () => {
  const d = new Debouncer({ adaptive: false });
  const results = await Promise.all(Array.from({ length: 5 }, () => d.wait(20)));
  assert.deepEqual(results, [false, false, false, false, true]);
  const ctl = new AbortController();
  const p = d.wait(1000, ctl.signal);
  ctl.abort();
  assert.equal(await p, false);
  assert.equal(await d.wait(0), true);
});

test('debounce: adaptive delay stretches to the typing rhythm, within bounds', () => {
  let t = 0;
  const d = new Debouncer({ now: () => t });
  assert.equal(d.delayFor(100), 100);
  for (let i = 0; i < 10; i++) { void d.wait(0); t += 120; } // 120 ms between keys
  assert.ok(d.delayFor(100) > 100 && d.delayFor(100) <= 200, String(d.delayFor(100)));
  // a pause ends the burst: the keystroke after it waits the base delay
  t += 5000;
  void d.wait(0);
  assert.equal(d.delayFor(100), 100);
  assert.equal(new Debouncer({ adaptive: false, now: () => t }).delayFor(100), 100);
});

// ---- status bar text

test('status text: adapter, state and last latency', () => {
  const adapter = { exportDir: '/runs/r1/export', runId: 'r1', label: 'lora-snake', method: 'lora', auto: false };
  assert.equal(statusText({ state: 'ready', adapter, lastLatencyMs: 41.6, lastEngineMs: 30 }).text, '$(sparkle) lora-snake · 42 ms');
  assert.match(statusText({ state: 'ready', adapter, lastLatencyMs: 41.6, lastEngineMs: 30 }).tooltip, /engine 30 ms/);
  assert.equal(statusText({ state: 'loading', adapter }).text, '$(loading~spin) lora-snake');
  assert.equal(statusText({ state: 'disabled' }).text, '$(circle-slash) Bloom');
  assert.equal(statusText({ state: 'no-adapter' }).text, '$(sparkle) Bloom: no adapter');
  assert.equal(statusText({ state: 'ready', adapter: { ...adapter, auto: true } }).text, '$(sparkle) lora-snake (newest)');
  const err = statusText({ state: 'error', adapter, problem: { code: 'EXPORT_MISSING', message: 'no export', hint: 'export it', actions: ['Export Adapter'] } });
  assert.equal(err.text, '$(error) lora-snake');
  assert.match(err.tooltip, /no export/);
});
