// Pure helpers for the charts (no DOM, unit-tested): a y range that the first steps cannot dominate, and
// the last value of a series (what a legend shows when the cursor is not over the chart).

/**
 * [min, max] for a loss axis. A fine-tuning loss often starts several times higher than where it settles; with
 * plain auto-scaling those first steps squash the rest of the curve into a flat line. When the top of the data
 * sits far above its 90th percentile, the axis stops a little above that percentile instead (the early points
 * run off the top; the legend and the chart's text summary still give their real values).
 */
export function robustRange(series: ArrayLike<number | null | undefined>[]): [number, number] | null {
  const values: number[] = [];
  for (const s of series) for (let i = 0; i < s.length; i++) { const v = s[i]; if (typeof v === 'number' && Number.isFinite(v)) values.push(v); }
  if (!values.length) return null;
  values.sort((a, b) => a - b);
  const lo = values[0];
  const max = values[values.length - 1];
  const p90 = values[Math.min(values.length - 1, Math.floor(0.9 * (values.length - 1)))];
  const spread = p90 - lo;
  const top = values.length >= 10 && spread > 0 && max - lo > 3 * spread ? p90 + spread : max;
  const pad = (top - lo) * 0.05 || Math.abs(top) * 0.05 || 0.5;
  return [lo - pad, top + pad];
}

/** The last finite value of a series, or null. */
export function lastValue(series: ArrayLike<number | null | undefined>): number | null {
  for (let i = series.length - 1; i >= 0; i--) { const v = series[i]; if (typeof v === 'number' && Number.isFinite(v)) return v; }
  return null;
}
