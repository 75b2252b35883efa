// Robust JSON-lines reader for the trainer's protocol channel. The stream arrives in arbitrary chunks and
// may carry junk (a library printing to fd 1 despite claim_stdout), huge lines, NaN literals, or event
// types this host does not know yet. None of that may throw or stall the reader.
import { StringDecoder } from 'node:string_decoder';
import Ajv, { type ErrorObject } from 'ajv';
import type { TrainerEvent } from '../protocol';
import eventsSchema from '../../schemas/events.schema.json';

/** The shared schema checks the known event types' fields; unknown types pass (readers ignore them). */
const validateEvent = new Ajv({ allErrors: true, verbose: true, strict: false }).compile(eventsSchema);

export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;

export type ParsedLine =
  | { kind: 'event'; event: TrainerEvent }
  /** a line that is not a protocol event: shown in the log, never forwarded */
  | { kind: 'junk'; text: string; reason: 'not-json' | 'not-an-event' | 'invalid-event' | 'too-long' };

export interface JsonLinesOptions {
  /** longer lines are dropped up to their newline (reported once as junk 'too-long') */
  maxLineBytes?: number;
}

/**
 * Incremental line splitter + event decoder. `push(chunk)` returns what the chunk completed; `end()` flushes
 * a final unterminated line. Keeps chunks in a list so a long line costs O(n), not O(n^2).
 */
export class JsonLinesParser {
  private readonly decoder = new StringDecoder('utf8');
  private readonly maxChars: number;
  private parts: string[] = [];
  private pendingChars = 0;
  private skipping = false;
  private skippedChars = 0;

  constructor(options: JsonLinesOptions = {}) {
    // UTF-16 length is a cheap proxy for the byte cap (never under-counts ASCII, the JSON common case)
    this.maxChars = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  }

  push(chunk: Buffer | string): ParsedLine[] {
    const text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    return this.consume(text);
  }

  end(): ParsedLine[] {
    const out = this.consume(this.decoder.end());
    if (this.skipping) {
      out.push(tooLong(this.skippedChars));
    } else if (this.pendingChars > 0) {
      const line = this.parts.join('');
      const parsed = parseLine(line);
      if (parsed) out.push(parsed);
    }
    this.parts = [];
    this.pendingChars = 0;
    this.skipping = false;
    this.skippedChars = 0;
    return out;
  }

  private consume(text: string): ParsedLine[] {
    const out: ParsedLine[] = [];
    let start = 0;
    while (start <= text.length) {
      // "\n", "\r\n" and a lone "\r" all end a line ("\r\n" leaves an empty line between, which is skipped);
      // JSON never holds a raw CR, so splitting on it cannot cut an event
      const nl = nextLineEnd(text, start);
      const piece = nl === -1 ? text.slice(start) : text.slice(start, nl);
      if (this.skipping) {
        this.skippedChars += piece.length;
      } else if (this.pendingChars + piece.length > this.maxChars) {
        this.skipping = true;
        this.skippedChars = this.pendingChars + piece.length;
        this.parts = [];
        this.pendingChars = 0;
      } else if (piece.length > 0) {
        this.parts.push(piece);
        this.pendingChars += piece.length;
      }
      if (nl === -1) break;
      // a complete line
      if (this.skipping) {
        out.push(tooLong(this.skippedChars));
        this.skipping = false;
        this.skippedChars = 0;
      } else {
        const line = this.parts.length === 1 ? this.parts[0] : this.parts.join('');
        this.parts = [];
        this.pendingChars = 0;
        const parsed = parseLine(line);
        if (parsed) out.push(parsed);
      }
      start = nl + 1;
    }
    return out;
  }
}

function nextLineEnd(text: string, from: number): number {
  const lf = text.indexOf('\n', from);
  const cr = text.indexOf('\r', from);
  return cr === -1 ? lf : lf === -1 ? cr : Math.min(lf, cr);
}

function tooLong(chars: number): ParsedLine {
  return { kind: 'junk', text: `<line of ${chars} characters dropped>`, reason: 'too-long' };
}

/** One line -> event / junk; blank lines -> undefined. Exported for events.jsonl readers. */
export function parseLine(raw: string): ParsedLine | undefined {
  const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
  const trimmed = line.trim();
  if (trimmed.length === 0) return undefined;
  if (trimmed[0] !== '{') return { kind: 'junk', text: line, reason: 'not-json' };
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch {
    // Python's json.dumps writes NaN/Infinity unless allow_nan=False: accept them as null
    try {
      value = JSON.parse(replaceNonFinite(trimmed));
    } catch {
      return { kind: 'junk', text: line, reason: 'not-json' };
    }
  }
  const event = asEvent(value);
  if (!event) return { kind: 'junk', text: line, reason: 'not-an-event' };
  // A known type with fields of the wrong type (a foreign writer, a corrupted file) is never handed to a renderer.
  // A null where a number belongs is a NaN/Infinity the trainer wrote (they travel as null): kept.
  const nanAsNull = (e: ErrorObject) => e.keyword === 'type' && e.data === null && /number|integer/.test(String(e.params.type));
  const wrong = validateEvent(event) ? [] : (validateEvent.errors ?? []).filter(e => !nanAsNull(e) && e.keyword !== 'if');
  if (wrong.length) {
    const e = wrong[0];
    return { kind: 'junk', text: `${event.type} event: ${e.instancePath || '(root)'} ${e.message ?? 'is invalid'}: ${line}`, reason: 'invalid-event' };
  }
  return { kind: 'event', event };
}

/** A protocol event is an object with v === 1 and a string type. Unknown types pass (readers ignore them). */
export function asEvent(value: unknown): TrainerEvent | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const o = value as Record<string, unknown>;
  if (o.v !== 1 || typeof o.type !== 'string' || o.type.length === 0) return undefined;
  if (typeof o.time !== 'number') o.time = Date.now() / 1000;
  return o as unknown as TrainerEvent;
}

/** Replaces bare NaN / Infinity / -Infinity tokens (outside strings) with null. */
export function replaceNonFinite(json: string): string {
  let out = '';
  let i = 0;
  let inString = false;
  while (i < json.length) {
    const c = json[i];
    if (inString) {
      out += c;
      if (c === '\\') { out += json[i + 1] ?? ''; i += 2; continue; }
      if (c === '"') inString = false;
      i++;
      continue;
    }
    if (c === '"') { inString = true; out += c; i++; continue; }
    if (json.startsWith('NaN', i)) { out += 'null'; i += 3; continue; }
    if (json.startsWith('-Infinity', i)) { out += 'null'; i += 9; continue; }
    if (json.startsWith('Infinity', i)) { out += 'null'; i += 8; continue; }
    out += c;
    i++;
  }
  return out;
}
