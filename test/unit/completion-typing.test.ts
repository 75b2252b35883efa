// Ghost text while a person types in an editor with word-based suggestions on: the suggest widget's selected item
// (selection.ts) and what the document already holds (repeats.ts). Pure functions, then the pipeline with a
// generator that answers like the tuned snake_case adapter (the real engine is covered by completion-engine).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CompletionPipeline } from '../../src/completion/pipeline';
import { answerRepeatsLine, followsShown, rememberShown, repeatsShown } from '../../src/completion/repeats';
import { applySelection, extendSelection } from '../../src/completion/selection';
import { DEFAULT_SETTINGS, type AdapterInfo, type CompletionRequest, type GenerateOptions, type GenerateResult, type Generator } from '../../src/completion/types';

const req = (prefix: string, suffix = '', over: Partial<CompletionRequest> = {}): CompletionRequest => ({ uri: 'file:///notes.txt', languageId: 'plaintext', prefix, suffix, ...over });

test('applySelection: the request as if the selected item were accepted', () => {
  const r = applySelection(req('Convert to snake_case\nstop main ro', '\n\nlater', { offset: 100, documentLength: 140 }), { text: 'row', replaceBefore: 2, replaceAfter: 0 });
  assert.equal(r?.prefix, 'Convert to snake_case\nstop main row');
  assert.equal(r?.suffix, '\n\nlater');
  assert.equal(r?.offset, 101);
  assert.equal(r?.documentLength, 141);
  assert.equal(r?.selected, undefined);
  // replace mode: the item also overwrites the rest of the word after the cursor
  const replaced = applySelection(req('x = foo', 'bar(1)'), { text: 'foobaz', replaceBefore: 3, replaceAfter: 3 });
  assert.equal(replaced?.prefix, 'x = foobaz');
  assert.equal(replaced?.suffix, '(1)');
  assert.equal(replaced?.offset, 10);
  // items that do not fit the text read around the cursor, or reach over a line break: no request
  assert.equal(applySelection(req('ab', ''), { text: 'abc', replaceBefore: 3, replaceAfter: 0 }), undefined);
  assert.equal(applySelection(req('a\nb', ''), { text: 'x', replaceBefore: 2, replaceAfter: 0 }), undefined);
  assert.equal(applySelection(req('ab', 'c\nd'), { text: 'x', replaceBefore: 0, replaceAfter: 3 }), undefined);
  assert.equal(applySelection(req('ab', ''), { text: 'x', replaceBefore: -1, replaceAfter: 0 }), undefined);
  assert.equal(extendSelection({ text: 'row', replaceBefore: 2, replaceAfter: 0 }, '\nstop_main_row'), 'row\nstop_main_row');
});

test('repeats: a shown completion is recognised once it is in the text, also after Enter', () => {
  const shown = rememberShown('Convert to snake_case\nstop main row', '\nstop_main_row');
  assert.equal(followsShown('Convert to snake_case\nstop main row\nstop_main_row', shown), true);
  assert.equal(followsShown('Convert to snake_case\nstop main row\nstop_main_row\n', shown), true);
  assert.equal(followsShown('Convert to snake_case\nstop main row\nstop_main_ro', shown), false);
  assert.equal(followsShown('Convert to snake_case\nstop main row\n', shown), false);
  assert.equal(followsShown('other\nstop_main_row', shown), false, 'the same words after other text are not the shown completion');
  assert.equal(followsShown('x', undefined), false);
  assert.equal(repeatsShown('\nstop_main_row', shown), true);
  assert.equal(repeatsShown('stop_main_row  ', shown), true);
  assert.equal(repeatsShown('\nstop_main_row_2', shown), false);
  assert.equal(answerRepeatsLine('\nstop_main_row', 'Convert to snake_case\nstop main row\nstop_main_row'), true);
  assert.equal(answerRepeatsLine('\nstop_main_row', 'Convert to snake_case\nstop main row'), false);
  assert.equal(answerRepeatsLine('\n', 'Convert to snake_case\n'), false);
});

/** Answers like the tuned adapter: the template prompt's input in snake_case; counts generations. */
class SnakeCaseGenerator implements Generator {
  prompts: string[] = [];
  async generate(prompt: string, opts: GenerateOptions): Promise<GenerateResult> {
    this.prompts.push(prompt);
    const input = /^Human: [^\n]*\n([\s\S]*)\n\nAssistant: $/.exec(prompt)?.[1] ?? '';
    const text = input.trim().toLowerCase().split(/\s+/).join('_');
    opts.onToken?.(text);
    return { text, finishReason: 'eos' };
  }
}

const instructionAdapter: AdapterInfo = { key: 'snake', template: { prompt: 'Human: {instruction}\n{input}', response_prefix: '\n\nAssistant: ' }, instructionTuned: true };

function snakePipeline() {
  const gen = new SnakeCaseGenerator();
  const p = new CompletionPipeline({ getGenerator: () => ({ generator: gen, adapter: instructionAdapter }), settings: () => ({ ...DEFAULT_SETTINGS, debounceMs: 0 }) });
  return { gen, p };
}

const FIRST = 'Convert to snake_case\nstop main row\nstop_main_row\n\n';

test('suggest widget open on the last word: the answer for the completed word, extending the selected item', async () => {
  const { gen, p } = snakePipeline();
  // "ro" typed, word-based suggestions select "row" (from the example above)
  const c = await p.complete(req(`${FIRST}Convert to snake_case\nsplit main ro`, '', { selected: { text: 'row', replaceBefore: 2, replaceAfter: 0 } }));
  assert.equal(c?.insertText, 'row\nsplit_main_row');
  assert.equal(c?.replaceBefore, 2);
  assert.equal(c?.replaceAfter, 0);
  assert.equal(gen.prompts.at(-1), 'Human: Convert to snake_case\nsplit main row\n\nAssistant: ');
  // the word typed to its end, the widget still open on the exact word: the same answer, from the cache
  const exact = await p.complete(req(`${FIRST}Convert to snake_case\nsplit main row`, '', { selected: { text: 'row', replaceBefore: 3, replaceAfter: 0 } }));
  assert.equal(exact?.insertText, 'row\nsplit_main_row');
  assert.equal(exact?.cached, true);
  // the widget closed: the plain answer at the cursor, still no second generation
  const plain = await p.complete(req(`${FIRST}Convert to snake_case\nsplit main row`));
  assert.equal(plain?.insertText, '\nsplit_main_row');
  assert.equal(plain?.replaceBefore, undefined);
  assert.equal(gen.prompts.length, 1);
  // a selected item that does not fit: nothing
  assert.equal(await p.complete(req('ro', '', { selected: { text: 'row', replaceBefore: 5, replaceAfter: 0 } })), undefined);
  assert.equal(p.stats.lastSkip, 'selection');
});

test('after Tab the answer is not suggested again: not at the end of the accepted line, not on the next', async () => {
  const { gen, p } = snakePipeline();
  const typed = `${FIRST}Convert to snake_case\nmerge client`;
  assert.equal((await p.complete(req(typed)))?.insertText, '\nmerge_client');
  // Tab: the answer is in the document, the cursor after it; the editor asks again at once
  assert.equal(await p.complete(req(`${typed}\nmerge_client`)), undefined);
  assert.equal(p.stats.lastSkip, 'answered');
  // Enter: a blank line, nothing either
  assert.equal(await p.complete(req(`${typed}\nmerge_client\n`)), undefined);
  assert.equal(gen.prompts.length, 1, 'no generation for an answered paragraph');
  // the next example is answered as usual
  assert.equal((await p.complete(req(`${typed}\nmerge_client\n\nConvert to snake_case\nsave fast image`)))?.insertText, '\nsave_fast_image');
});

test('an answer equal to the paragraph\'s last line is not shown (typed by hand, or the editor was reloaded)', async () => {
  const { p } = snakePipeline();
  // the model, seeing "merge client\nmerge_client" as the input, answers "merge_client_merge_client": shown; a model
  // that repeats the last line is not
  const repeating = new CompletionPipeline({
    getGenerator: () => ({ generator: { generate: async () => ({ text: 'merge_client', finishReason: 'eos' }) }, adapter: instructionAdapter }),
    settings: () => ({ ...DEFAULT_SETTINGS, debounceMs: 0 }),
  });
  assert.equal(await repeating.complete(req('Convert to snake_case\nmerge client\nmerge_client')), undefined);
  assert.equal(repeating.stats.lastSkip, 'repeat');
  assert.equal((await p.complete(req('Convert to snake_case\nmerge client\nmerge_client')))?.insertText, '\nmerge_client_merge_client');
});

test('code: a continuation after an accepted completion is shown, the same text again is not', async () => {
  let reply = 'total = a + b';
  const p = new CompletionPipeline({
    getGenerator: () => ({ generator: { generate: async () => ({ text: reply, finishReason: 'eos' }) }, adapter: { key: 'code', template: null, instructionTuned: false } }),
    settings: () => ({ ...DEFAULT_SETTINGS, debounceMs: 0 }),
  });
  const code = req('def add(a, b):\n    ', '', { languageId: 'python' });
  assert.equal((await p.complete(code))?.insertText, 'total = a + b');
  // accepted; the model says the same once more at the end of the line: dropped
  const accepted = { ...code, prefix: `${code.prefix}total = a + b` };
  assert.equal(await p.complete(accepted), undefined);
  assert.equal(p.stats.lastSkip, 'repeat');
  // the next statement after Enter: shown
  reply = 'return total';
  assert.equal((await p.complete({ ...code, prefix: `${accepted.prefix}\n    ` }))?.insertText, 'return total');
});
