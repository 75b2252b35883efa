// Minimal safetensors reader (format: 8-byte little-endian header length, JSON header, raw
// little-endian tensor bytes). Used for prefix_kv.safetensors; no dependency needed for this.
import fs from 'node:fs';
import { EngineError } from './errors';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';
const BYTES: Record<string, number> = { F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2, I16: 2, I8: 1, U8: 1, BOOL: 1 };

export interface RawTensor { dtype: SafetensorsDtype; shape: number[]; bytes: Uint8Array }

/** Parses a safetensors buffer; `where` names the file in errors. Tensor bytes are copies (aligned). */
export function parseSafetensors(buf: Uint8Array, where = 'safetensors'): Map<string, RawTensor> {
  const fail = (msg: string): never => {
    throw new EngineError('PREFIX_KV_INVALID', `${where}: ${msg}`, { path: where, hint: 'the file is truncated or not safetensors; export the run again' });
  };
  if (buf.byteLength < 8) fail(`file is ${buf.byteLength} bytes, too short for a safetensors header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen > buf.byteLength - 8 || headerLen > 100 * 1024 * 1024) fail(`header length ${headerLen} exceeds the file size ${buf.byteLength}`);
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + headerLen)));
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message})`);
  }
  const data = buf.subarray(8 + headerLen);
  const out = new Map<string, RawTensor>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const size = BYTES[info?.dtype];
    if (!size) fail(`tensor "${name}" has unsupported dtype ${JSON.stringify(info?.dtype)}`);
    if (!Array.isArray(info.shape) || !info.shape.every(d => Number.isInteger(d) && d >= 0)) fail(`tensor "${name}" has a bad shape ${JSON.stringify(info.shape)}`);
    const [b, e] = info.data_offsets ?? [];
    const numel = info.shape.reduce((a, d) => a * d, 1);
    if (!Number.isInteger(b) || !Number.isInteger(e) || b < 0 || e > data.byteLength || e - b !== numel * size) {
      fail(`tensor "${name}" data_offsets ${JSON.stringify(info.data_offsets)} do not fit its shape ${JSON.stringify(info.shape)} x ${info.dtype} in ${data.byteLength} data bytes`);
    }
    out.set(name, { dtype: info.dtype as SafetensorsDtype, shape: info.shape, bytes: data.slice(b, e) });
  }
  return out;
}

export function readSafetensors(file: string): Map<string, RawTensor> {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new EngineError('PREFIX_KV_INVALID', `cannot read ${file}: ${(e as Error).message}`, { path: file });
  }
  return parseSafetensors(buf, file);
}

/** Typed view of a tensor's bytes (the copy made by parseSafetensors is aligned). */
export function tensorData(t: RawTensor): Float32Array | Uint16Array {
  if (t.dtype === 'F32') return new Float32Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength / 4);
  if (t.dtype === 'F16') return new Uint16Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength / 2);
  throw new EngineError('PREFIX_KV_INVALID', `tensor dtype ${t.dtype} is not supported for KV (float32 or float16 only)`);
}
