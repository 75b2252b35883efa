import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import Ajv from 'ajv';
import { validateConfig } from '../../src/protocol/config';

const configVectors = JSON.parse(fs.readFileSync('schemas/vectors/configs.json', 'utf8'));
const eventVectors = JSON.parse(fs.readFileSync('schemas/vectors/events.json', 'utf8'));

test('every valid config vector passes the shared schema', () => {
  for (const v of configVectors.valid) assert.deepEqual(validateConfig(v.config), [], v.name);
});

test('every invalid config vector fails with an issue naming the field', () => {
  for (const v of configVectors.invalid) {
    const issues = validateConfig(v.config);
    assert.ok(issues.length > 0, `${v.name} should be invalid`);
    assert.ok(issues.some(i => i.path === v.error_path), `${v.name}: expected an issue at "${v.error_path}", got ${JSON.stringify(issues)}`);
    for (const i of issues) assert.ok(i.message.length > 0);
  }
});

test('event transcripts match the events schema; invalid events do not', () => {
  const validate = new Ajv({ strict: false }).compile(JSON.parse(fs.readFileSync('schemas/events.schema.json', 'utf8')));
  for (const [name, events] of Object.entries(eventVectors.transcripts) as [string, unknown[]][])
    for (const e of events) assert.ok(validate(e), `${name}: ${JSON.stringify(validate.errors)}`);
  for (const e of eventVectors.invalid) assert.equal(validate(e), false, JSON.stringify(e));
});
