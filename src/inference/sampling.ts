// Next-token choice: greedy, or temperature + top-p (nucleus) sampling with a seedable RNG.
// Pure functions over the last position's logits. The engine's greedy decoding does not come here: it takes the
// graph's next_tokens, the same choice as argmax below (the first index on ties), without fetching the logits.

export type Rng = () => number; // uniform in [0, 1)

/** mulberry32: tiny, fast, good enough for sampling; the same seed gives the same tokens. */
export function createRng(seed: number = (Math.random() * 2 ** 32) >>> 0): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Index of the largest logit; the first one on ties (as torch.argmax). NaN never wins. */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  let bestV = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (v > bestV) {
      bestV = v;
      best = i;
    }
  }
  return best;
}

export interface SamplingParams { temperature: number; topP: number }

/**
 * temperature <= 0 -> greedy. Otherwise softmax(logits / T) restricted to the smallest set of most
 * likely tokens whose mass reaches topP (ties in order of id), then one draw from rng.
 */
export function sampleToken(logits: ArrayLike<number>, params: SamplingParams, rng: Rng): number {
  if (!(params.temperature > 0)) return argmax(logits);
  const n = logits.length;
  const invT = 1 / params.temperature;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
  if (max === -Infinity || Number.isNaN(max)) return argmax(logits);
  const probs = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const p = Math.exp((logits[i] - max) * invT);
    probs[i] = p;
    sum += p;
  }
  const topP = Math.min(Math.max(params.topP, 0), 1);
  if (topP >= 1) return drawFrom(probs, sum, rng);

  // The nucleus is a prefix of the tokens sorted by probability. Sorting all ids is slow for a 250k
  // vocabulary, so sort only the tokens above a threshold, lowered until they hold enough mass.
  const need = topP * sum;
  let threshold = 1 / 1024; // relative to the top token (whose unnormalized prob is 1)
  let cand: number[] = [];
  for (;;) {
    cand = [];
    let mass = 0;
    for (let i = 0; i < n; i++) if (probs[i] >= threshold) { cand.push(i); mass += probs[i]; }
    if (mass >= need || threshold === 0) break;
    threshold = threshold < 1e-30 ? 0 : threshold / 1024;
  }
  cand.sort((a, b) => probs[b] - probs[a] || a - b);
  let kept = 0;
  let mass = 0;
  while (kept < cand.length && (kept === 0 || mass < need)) mass += probs[cand[kept++]];
  let r = rng() * mass;
  for (let k = 0; k < kept; k++) {
    r -= probs[cand[k]];
    if (r < 0) return cand[k];
  }
  return cand[kept - 1];
}

function drawFrom(probs: Float64Array, sum: number, rng: Rng): number {
  let r = rng() * sum;
  let last = 0;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] > 0) last = i;
    r -= probs[i];
    if (r < 0) return i;
  }
  return last;
}
