// The protocol parser against partial lines, junk, huge lines, NaN, unknown types and split UTF-8,
// with a deterministic seeded fuzz of 10,000 random chunkings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRng as rng } from '../../src/inference/sampling';
import { JsonLinesParser, parseLine, replaceNonFinite, type ParsedLine } from '../../src/training/jsonLines';

const vectors = JSON.parse(fs.readFileSync('schemas/vectors/events.json', 'utf8'));
const transcriptEvents: Record<string, unknown>[] = Object.values(vectors.transcripts as Record<string, Record<string, unknown>[]>).flat();

interface Stream { bytes: Buffer; expected: unknown[]; junk: number }

/** A trainer stream: real transcript events interleaved with junk of every kind the parser must shrug off. */
function buildStream(rand: () => number, maxLine: number): Stream {
  const lines: string[] = [];
  const expected: unknown[] = [];
  let junk = 0;
  const junkLines = [
    'Some weights of BloomForCausalLM were not initialized',
    '{"not": "an event"}',
    '[1, 2, 3]',
    '{"v": 1, "type": ',
    '{"v": 2, "type": "progress", "time": 1}',
    '  \t ',
    'null',
    '}{',
    '\u001b[31mred tqdm bar 45%|████▌     |\u001b[0m',
  ];
  for (let i = 0; i < 30; i++) {
    const r = rand();
    if (r < 0.55) {
      const e = transcriptEvents[Math.floor(rand() * transcriptEvents.length)];
      lines.push(JSON.stringify(e));
      expected.push(e);
    } else if (r < 0.65) {
      // NaN / Infinity literals as Python's json.dumps writes them without allow_nan=False
      lines.push(`{"v":1,"type":"progress","time":5,"step":${i},"total_steps":30,"epoch":0.5,"loss":NaN,"lr":Infinity,"grad_norm":-Infinity,"note":"NaN in a string stays"}`);
      expected.push({ v: 1, type: 'progress', time: 5, step: i, total_steps: 30, epoch: 0.5, loss: null, lr: null, grad_norm: null, note: 'NaN in a string stays' });
    } else if (r < 0.72) {
      // unknown event types are events (readers ignore them), with non-ASCII text split across chunks
      const e = { v: 1, type: 'future_thing', time: 7, text: 'héllo — 你好 🌸', n: i };
      lines.push(JSON.stringify(e));
      expected.push(e);
    } else if (r < 0.75) {
      // a huge junk line (over the cap) must be dropped without swallowing the next event
      lines.push('{"v":1,"type":"log","time":1,"level":"info","message":"' + 'x'.repeat(maxLine + Math.floor(rand() * 3000)) + '"}');
      junk++;
    } else if (r < 0.8) {
      const e = { v: 1, type: 'log', time: 3, level: 'info', message: 'crlf line' };
      lines.push(JSON.stringify(e) + '\r');
      expected.push(e);
    } else {
      const j = junkLines[Math.floor(rand() * junkLines.length)];
      lines.push(j);
      if (j.trim()) junk++;
    }
  }
  // a last event without its newline: end() must deliver it
  const last = { v: 1, type: 'done', time: 9, status: 'completed', step: 30, adapter_dir: '/x/adapter', metrics: {} };
  return { bytes: Buffer.from(lines.join('\n') + '\n' + JSON.stringify(last), 'utf8'), expected: [...expected, last], junk };
}

function feed(parser: JsonLinesParser, bytes: Buffer, rand: () => number): ParsedLine[] {
  const out: ParsedLine[] = [];
  let i = 0;
  while (i < bytes.length) {
    // mostly small chunks (splitting UTF-8 sequences and "\r\n"), sometimes big ones
    const size = rand() < 0.8 ? 1 + Math.floor(rand() * 96) : 1 + Math.floor(rand() * 4096);
    out.push(...parser.push(bytes.subarray(i, i + size)));
    i += size;
  }
  out.push(...parser.end());
  return out;
}

test('parser survives 10,000 seeded random chunkings with junk, huge lines, NaN, unknown types, split UTF-8', () => {
  const maxLine = 1024; // the cap is an option: a small one keeps 10,000 rounds fast while exercising the same path
  const rand = rng(20240611);
  const streams = Array.from({ length: 20 }, () => buildStream(rand, maxLine));
  let events = 0;
  for (let round = 0; round < 10_000; round++) {
    const s = streams[round % streams.length];
    const parsed = feed(new JsonLinesParser({ maxLineBytes: maxLine }), s.bytes, rand);
    const got = parsed.filter(p => p.kind === 'event').map(p => (p as { event: unknown }).event);
    assert.deepEqual(got, s.expected, `round ${round}`);
    assert.equal(parsed.filter(p => p.kind === 'junk').length, s.junk, `round ${round}: junk count`);
    events += got.length;
  }
  assert.ok(events > 150_000);
});

test('a real 1 MB cap: a 3 MB line is skipped to its newline and the next event still arrives', () => {
  const parser = new JsonLinesParser();
  const huge = '{"v":1,"type":"log","time":1,"level":"info","message":"' + 'y'.repeat(3 * 1024 * 1024) + '"}\n';
  const next = { v: 1, type: 'eval', time: 2, step: 4, eval_loss: 1.5 };
  const out: ParsedLine[] = [];
  const bytes = Buffer.from(huge + JSON.stringify(next) + '\n');
  for (let i = 0; i < bytes.length; i += 65536) out.push(...parser.push(bytes.subarray(i, i + 65536)));
  out.push(...parser.end());
  assert.equal(out.length, 2);
  assert.equal(out[0].kind, 'junk');
  assert.equal((out[0] as { reason: string }).reason, 'too-long');
  assert.deepEqual(out[1], { kind: 'event', event: next });
});

test('a line just under the cap is parsed; an unterminated huge tail is reported once', () => {
  const parser = new JsonLinesParser({ maxLineBytes: 200 });
  const e = { v: 1, type: 'log', time: 1, level: 'info', message: 'm'.repeat(120) };
  const out = [...parser.push(JSON.stringify(e) + '\n' + 'z'.repeat(500)), ...parser.end()];
  assert.deepEqual(out.map(o => o.kind), ['event', 'junk']);
});

test('parseLine: events need v === 1 and a string type; time is filled in when missing', () => {
  assert.equal(parseLine('')?.kind, undefined);
  assert.equal(parseLine('{"type":"progress"}')?.kind, 'junk');
  assert.equal(parseLine('{"v":1,"type":5}')?.kind, 'junk');
  const p = parseLine('{"v":1,"type":"log","level":"info","message":"m"}');
  assert.equal(p?.kind, 'event');
  assert.equal(typeof (p as { event: { time: number } }).event.time, 'number');
});

test('lone CR separators end lines like LF and CRLF (two events never merge)', () => {
  const a = { v: 1, type: 'log', time: 1, level: 'info', message: 'a' };
  const b = { v: 1, type: 'checkpoint', time: 2, step: 3, path: '/r/checkpoints/step-3' };
  for (const sep of ['\r', '\n', '\r\n']) {
    const bytes = Buffer.from(JSON.stringify(a) + sep + JSON.stringify(b) + sep + JSON.stringify(a) + sep);
    for (let cut = 0; cut <= bytes.length; cut += 7) { // every split, also between the CR and the LF of a CRLF
      const parser = new JsonLinesParser();
      const out = [...parser.push(bytes.subarray(0, cut)), ...parser.push(bytes.subarray(cut)), ...parser.end()];
      assert.deepEqual(out, [a, b, a].map(event => ({ kind: 'event', event })), JSON.stringify({ sep, cut }));
    }
  }
});

test('a known event with fields of the wrong type is junk (named), never an event; NaN-as-null is kept', () => {
  const bad = [
    '{"v":1,"type":"progress","time":1,"step":"three","total_steps":10,"epoch":0,"loss":1,"lr":0.1}',
    '{"v":1,"type":"eval","time":1,"step":2,"eval_loss":"low"}',
    '{"v":1,"type":"started","time":1,"config":{},"device":"cpu","world_size":1,"trainable_params":"many","total_params":2,"total_steps":3}',
    '{"v":1,"type":"done","time":1,"status":"completed","step":1,"adapter_dir":null,"metrics":"none"}',
    '{"v":1,"type":"error","time":1,"code":5,"message":"x"}',
    '{"v":1,"type":"log","time":1,"level":"info"}',
  ];
  for (const line of bad) {
    const p = parseLine(line);
    assert.equal(p?.kind, 'junk', line);
    assert.equal((p as { reason: string }).reason, 'invalid-event');
    assert.match((p as { text: string }).text, /^(progress|eval|started|done|error|log) event: \S+ /);
  }
  const nan = parseLine('{"v":1,"type":"progress","time":1,"step":3,"total_steps":10,"epoch":0.3,"loss":NaN,"lr":Infinity}');
  assert.equal(nan?.kind, 'event');
  assert.equal(parseLine('{"v":1,"type":"someday","time":1,"step":"any"}')?.kind, 'event'); // unknown types pass
});

test('replaceNonFinite leaves strings and escapes alone', () => {
  assert.equal(replaceNonFinite('{"a":NaN,"b":"NaN \\" Infinity","c":[-Infinity,Infinity]}'), '{"a":null,"b":"NaN \\" Infinity","c":[null,null]}');
});
