// uPlot line charts that follow the VS Code theme: colours come from the theme's CSS variables and every
// chart is rebuilt when the body's theme class changes. Sizes follow the container (ResizeObserver).
import uPlot from 'uplot';
import { lastValue, robustRange } from './chart-scale';

export interface SeriesSpec { label: string; color: string; dash?: number[]; points?: boolean; scale?: string }
export interface ChartSpec {
  id: string; label: string; series: SeriesSpec[]; height?: number; yLabel?: string; y2Label?: string; logY?: boolean; yFormat?: 'sci';
  /** y axis from robustRange(): early outliers (the first steps of a loss) do not flatten the rest */
  robustY?: boolean;
}

const live = new Set<LineChart>();

/** A theme colour variable with a fallback (tests and old VS Code versions may lack some). */
export function themeColor(name: string, fallback: string): string {
  const v = getComputedStyle(document.body).getPropertyValue(name).trim();
  return v || fallback;
}

export const PALETTE: Array<[string, string]> = [
  ['--vscode-charts-blue', '#3794ff'], ['--vscode-charts-orange', '#d18616'], ['--vscode-charts-green', '#89d185'],
  ['--vscode-charts-purple', '#b180d7'], ['--vscode-charts-red', '#f14c4c'], ['--vscode-charts-yellow', '#cca700'],
];
export const paletteVar = (i: number) => PALETTE[i % PALETTE.length][0];
const fallbackFor = (name: string) => PALETTE.find(p => p[0] === name)?.[1] ?? '#888888';

export class LineChart {
  readonly el: HTMLElement;
  private plot: uPlot | undefined;
  private data: uPlot.AlignedData;
  private readonly resize: ResizeObserver;

  constructor(parent: HTMLElement, private spec: ChartSpec) {
    this.el = document.createElement('div');
    this.el.className = 'chart';
    this.el.id = spec.id;
    this.el.setAttribute('role', 'img');
    this.el.dataset.points = '0';
    parent.append(this.el);
    this.data = [[], ...spec.series.map(() => [])] as unknown as uPlot.AlignedData;
    this.resize = new ResizeObserver(() => this.fit());
    this.resize.observe(this.el);
    live.add(this);
    this.build();
  }

  setSeries(series: SeriesSpec[]): void {
    this.spec = { ...this.spec, series };
    this.data = [[], ...series.map(() => [])] as unknown as uPlot.AlignedData;
    this.build();
  }

  setData(data: uPlot.AlignedData): void {
    this.data = data;
    const n = (data[0] as ArrayLike<number>).length;
    this.el.dataset.points = String(n);
    this.el.setAttribute('aria-label', `${this.spec.label}: ${n} point${n === 1 ? '' : 's'}${this.summary()}`);
    if (!this.plot) return;
    this.plot.setData(data);
    // away from the cursor the legend shows the latest values (uPlot's default there is "--")
    if ((this.plot.cursor.left ?? -1) < 0) this.plot.setLegend({ idx: null as unknown as number });
  }

  destroy(): void {
    this.resize.disconnect();
    this.plot?.destroy();
    live.delete(this);
    this.el.remove();
  }

  /** Rebuild with the current theme's colours. */
  build(): void {
    this.plot?.destroy();
    const fg = themeColor('--vscode-foreground', '#cccccc');
    const grid = themeColor('--vscode-charts-lines', 'rgba(128,128,128,0.35)');
    const font = `11px ${themeColor('--vscode-font-family', 'sans-serif')}`;
    const axis = (label?: string, extra: Partial<uPlot.Axis> = {}): uPlot.Axis => ({
      stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, font, labelFont: font,
      ...(label ? { label, labelSize: 14 } : {}), ...extra,
    });
    const sci = (_u: uPlot, values: number[]) => values.map(v => (v === 0 ? '0' : v.toExponential(1)));
    const fmt = (v: number, yFormat?: 'sci') => (yFormat === 'sci' && v !== 0 ? v.toExponential(2) : String(Number(v.toPrecision(4))));
    // the legend reads the hovered step, or the latest value when the cursor is elsewhere
    const legendValue = (yFormat?: 'sci') => (u: uPlot, v: number | null, sidx: number, idx: number | null) => {
      const shown = idx === null ? lastValue(u.data[sidx] as ArrayLike<number | null>) : v;
      return shown === null || shown === undefined ? '—' : fmt(shown, yFormat);
    };
    const robust = (u: uPlot, min: number, max: number): uPlot.Range.MinMax =>
      robustRange(u.data.slice(1).filter((_, i) => (this.spec.series[i]?.scale ?? 'y') === 'y') as ArrayLike<number | null>[]) ?? [min, max];
    const hasY2 = this.spec.series.some(s => s.scale === 'y2');
    const opts: uPlot.Options = {
      width: Math.max(160, this.el.clientWidth || 280),
      height: this.spec.height ?? 180,
      scales: { x: { time: false }, y: { distr: this.spec.logY ? 3 : 1, ...(this.spec.robustY && !this.spec.logY ? { range: robust } : {}) }, ...(hasY2 ? { y2: { auto: true } } : {}) },
      axes: [
        axis(undefined, { size: 28 }),
        axis(this.spec.yLabel, { scale: 'y', size: 52, ...(this.spec.yFormat === 'sci' ? { values: sci } : {}) }),
        ...(hasY2 ? [axis(this.spec.y2Label, { scale: 'y2', side: 1, grid: { show: false } })] : []),
      ],
      series: [
        { label: 'step', value: legendValue() },
        ...this.spec.series.map(s => {
          const color = themeColor(s.color, fallbackFor(s.color));
          return { label: s.label, value: legendValue(this.spec.yFormat), stroke: color, width: 1.5, dash: s.dash, spanGaps: true, scale: s.scale ?? 'y', points: { show: s.points ?? false, size: 5, fill: color, stroke: color } };
        }),
      ],
      legend: { show: true, live: true },
      cursor: { drag: { x: true, y: false } },
    };
    this.plot = new uPlot(opts, this.data, this.el);
  }

  private fit(): void {
    const w = this.el.clientWidth;
    if (this.plot && w > 0 && Math.abs(w - this.plot.width) > 2) this.plot.setSize({ width: w, height: this.spec.height ?? 180 });
  }

  private summary(): string {
    const parts: string[] = [];
    this.spec.series.forEach((s, i) => {
      const ys = this.data[i + 1] as ArrayLike<number | null>;
      for (let k = ys.length - 1; k >= 0; k--) if (ys[k] !== null && ys[k] !== undefined) { parts.push(`last ${s.label} ${Number(ys[k]).toPrecision(4)}`); break; }
    });
    return parts.length ? `; ${parts.join(', ')}` : '';
  }
}

// theme switches: VS Code changes the body's class (vscode-light / vscode-dark / vscode-high-contrast)
let observing = false;
export function watchTheme(onChange?: () => void): void {
  if (observing) return;
  observing = true;
  new MutationObserver(() => { for (const c of live) c.build(); onChange?.(); })
    .observe(document.body, { attributes: true, attributeFilter: ['class', 'data-vscode-theme-kind'] });
}
