// The field names of a dataset file, read from its start (first JSON object, or the CSV header) so the column
// mapping can offer them in a dropdown. Pure node (no vscode); reads at most 256 KiB.
import fs from 'node:fs';
import path from 'node:path';

const HEAD_BYTES = 256 * 1024;

export function datasetFields(file: string): string[] {
  if (fs.statSync(file).isDirectory()) return savedDatasetFields(file);
  const fd = fs.openSync(file, 'r');
  let head: string;
  try {
    const buf = Buffer.alloc(HEAD_BYTES);
    head = buf.subarray(0, fs.readSync(fd, buf, 0, HEAD_BYTES, 0)).toString('utf8').replace(/^\uFEFF/, '');
  } finally {
    fs.closeSync(fd);
  }
  if (/\.csv$/i.test(file)) return csvHeader(head.split(/\r?\n/, 1)[0] ?? '');
  const text = head.trimStart();
  // a JSON array: the keys of its first object; JSON lines: the keys of the first line that parses
  const first = text.startsWith('[') ? firstArrayObject(text) : text.split(/\r?\n/).map(parse).find(isRecord);
  return first ? Object.keys(first) : [];
}

function parse(line: string): unknown {
  try { return JSON.parse(line); } catch { return undefined; }
}
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The first element of a JSON array whose first object may be followed by a cut-off rest. */
function firstArrayObject(text: string): Record<string, unknown> | undefined {
  const start = text.indexOf('{');
  if (start < 0) return undefined;
  let depth = 0, inString = false, escaped = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) { if (escaped) escaped = false; else if (c === '\\') escaped = true; else if (c === '"') inString = false; continue; }
    if (c === '"') inString = true;
    else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) { const v = parse(text.slice(start, i + 1)); return isRecord(v) ? v : undefined; }
  }
  return undefined;
}

function csvHeader(line: string): string[] {
  const out: string[] = [];
  let cur = '', quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) { if (c === '"' && line[i + 1] === '"') { cur += '"'; i++; } else if (c === '"') quoted = false; else cur += c; }
    else if (c === '"') quoted = true;
    else if (c === ',') { out.push(cur.trim()); cur = ''; }
    else cur += c;
  }
  out.push(cur.trim());
  return out.filter(Boolean);
}

/** A folder written by datasets' save_to_disk: the features of the Dataset (dataset_info.json), or of a
 * DatasetDict's train split (else its first split); any other folder has no fields. */
function savedDatasetFields(dir: string): string[] {
  const read = (p: string): unknown => { try { return JSON.parse(fs.readFileSync(p, 'utf8')); } catch { return undefined; } };
  const features = (d: string): string[] => {
    const info = read(path.join(d, 'dataset_info.json'));
    return isRecord(info) && isRecord(info.features) ? Object.keys(info.features) : [];
  };
  const dict = read(path.join(dir, 'dataset_dict.json'));
  if (isRecord(dict) && Array.isArray(dict.splits)) {
    const splits = dict.splits.map(String);
    const split = splits.includes('train') ? 'train' : splits[0];
    return split ? features(path.join(dir, split)) : [];
  }
  return features(dir);
}
