// Tokenizer parity: @huggingface/tokenizers (what the engine runs) gives the same ids as the Python
// `tokenizers` crate on the shared vectors (schemas/vectors/tokenizer.json, made by
// scripts/make_tokenizer_vectors.py from the embedded model), and the streaming decoder rebuilds the
// same text token by token, multi-byte characters split across tokens included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { StreamDecoder, TextTokenizer } from '../../src/inference/tokenizer';

const ROOT = path.resolve(__dirname, '..', '..');
const vectors = JSON.parse(fs.readFileSync(path.join(ROOT, 'schemas/vectors/tokenizer.json'), 'utf8')) as {
  model: string;
  tokenizer: string;
  cases: { text: string; ids: number[]; decoded: string }[];
};
const tokenizer = TextTokenizer.fromFile(path.join(ROOT, vectors.model, vectors.tokenizer));

test('same ids and decoded text as Python tokenizers on every shared vector', () => {
  assert.ok(vectors.cases.length >= 20);
  assert.ok(vectors.cases.some(c => [...c.text].some(ch => ch.codePointAt(0)! > 0x7f)), 'the vectors include non-ASCII text');
  for (const c of vectors.cases) {
    assert.deepEqual(tokenizer.encode(c.text), c.ids, `ids of ${JSON.stringify(c.text)}`);
    assert.equal(tokenizer.decode(c.ids), c.decoded, `decode of ${JSON.stringify(c.text)}`);
  }
});

test('streaming decode token by token gives the full text', () => {
  for (const c of vectors.cases) {
    const special = new Set(c.ids.filter(id => tokenizer.decode([id], true) === '' && tokenizer.decode([id]) !== ''));
    const ids = c.ids.filter(id => !special.has(id));
    const stream = new StreamDecoder(tokenizer);
    let text = '';
    for (const id of ids) {
      const piece = stream.push(id);
      assert.ok(!piece.includes('\uFFFD') || tokenizer.decode(ids).includes('\uFFFD'), `no half characters streamed for ${JSON.stringify(c.text)}`);
      text += piece;
    }
    text += stream.flush();
    assert.equal(text, tokenizer.decode(ids, true), `stream of ${JSON.stringify(c.text)}`);
  }
});
