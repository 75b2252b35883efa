// Template rendering parity with the trainer: the shared vectors of schemas/vectors/templates.json (the trainer's
// twin test is trainer/tests/test_contracts.py test_template_vectors).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { renderPrompt, type PromptFields, type PromptTemplate } from '../../src/protocol/template';

const vectors = JSON.parse(fs.readFileSync('schemas/vectors/templates.json', 'utf8')) as {
  vectors: Array<{ name: string; template: PromptTemplate; fields: PromptFields; expected: string }>;
};

for (const v of vectors.vectors) {
  test(`template vector: ${v.name}`, () => {
    assert.equal(renderPrompt(v.template, v.fields), v.expected);
  });
}
