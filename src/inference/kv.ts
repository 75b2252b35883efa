// The past key/value cache as plain typed arrays, position-major: [capacity, num_heads, head_dim] per layer, so the
// filled positions are one contiguous prefix that goes into the graph's past_key_values.{i}.key/value inputs as a view
// (no copy); the new_key_values.{i}.* outputs ([n, num_heads, head_dim]) are written into the next free rows.
// float16 is kept as raw Uint16 bits, which is what onnxruntime takes and returns for float16 tensors.

export type KvData = Float32Array | Uint16Array;

export interface KvCache {
  /** Positions held (prefix tokens + prompt/generated tokens). */
  length: number;
  /**
   * Positions each array has room for: [capacity, num_heads, head_dim]. The rows after `length` are free: the graph
   * is given only the first `length`, and the engine fills the next ones in place (docs/export.md, "Slotted cache").
   */
  capacity: number;
  keys: KvData[];
  values: KvData[];
}

export function emptyKv(numLayers: number, dtype: 'float32' | 'float16'): KvCache {
  const mk = () => (dtype === 'float16' ? new Uint16Array(0) : new Float32Array(0));
  return { length: 0, capacity: 0, keys: Array.from({ length: numLayers }, mk), values: Array.from({ length: numLayers }, mk) };
}

/** The first `keep` positions: the same arrays with fewer positions counted (later slots become free). */
export function truncateKv(kv: KvCache, keep: number): KvCache {
  return keep >= kv.length ? kv : { ...kv, length: keep };
}

/** A copy of `kv`'s positions in arrays of `capacity` rows (the filled prefix moves as one block). */
export function resizeKv(kv: KvCache, capacity: number, numHeads: number, headDim: number): KvCache {
  if (capacity < kv.length) throw new RangeError(`resizeKv: capacity ${capacity} < length ${kv.length}`);
  const move = (a: KvData): KvData => {
    const out = new (a.constructor as { new (n: number): KvData })(capacity * numHeads * headDim);
    out.set(a.subarray(0, kv.length * numHeads * headDim));
    return out;
  };
  return { length: kv.length, capacity, keys: kv.keys.map(move), values: kv.values.map(move) };
}

/** Writes `fresh` ([n, num_heads, head_dim]) into rows length..length+n-1 of `dst`. */
export function writeSlots(dst: KvData, length: number, fresh: KvData, numHeads: number, headDim: number): void {
  dst.set(fresh, length * numHeads * headDim);
}

/**
 * The graph's view of the past: the filled rows of `a` ([rows, num_heads, head_dim], no copy). The graph takes at
 * least one row (onnxruntime's FusedMatMul fails on an empty one), masked out by past_length 0: an empty cache gives
 * a row of zeros.
 */
export function pastRows(a: KvData, length: number, numHeads: number, headDim: number): KvData {
  const row = numHeads * headDim;
  if (length > 0) return a.subarray(0, length * row);
  return a.length >= row ? a.subarray(0, row) : new (a.constructor as { new (n: number): KvData })(row);
}

/** Length of the longest common prefix of two id lists. */
export function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

// IEEE half <-> single conversions, used only when prefix_kv.safetensors and the graph disagree on dtype.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function toFloat16Bits(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    f32[0] = src[i];
    const x = u32[0];
    const sign = (x >>> 16) & 0x8000;
    const exp = ((x >>> 23) & 0xff) - 127 + 15;
    let mant = x & 0x7fffff;
    if (((x >>> 23) & 0xff) === 0xff) out[i] = sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
    else if (exp >= 0x1f) out[i] = sign | 0x7c00; // overflow -> inf
    else if (exp <= 0) {
      if (exp < -10) out[i] = sign; // underflow -> 0
      else {
        mant |= 0x800000;
        const shift = 14 - exp;
        let half = mant >>> shift;
        if ((mant >>> (shift - 1)) & 1 && ((mant & ((1 << (shift - 1)) - 1)) || half & 1)) half++;
        out[i] = sign | half;
      }
    } else {
      let half = sign | (exp << 10) | (mant >>> 13);
      if (mant & 0x1000 && (mant & 0x2fff)) half++; // round to nearest even
      out[i] = half;
    }
  }
  return out;
}

export function fromFloat16Bits(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const h = src[i];
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    out[i] = exp === 0 ? sign * mant * 2 ** -24 : exp === 0x1f ? (mant ? NaN : sign * Infinity) : sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return out;
}
