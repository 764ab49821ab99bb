/*
 * One chart per tag: every selected run's curve, smoothed (solid) over its raw points (faint),
 * drawn by uPlot in its faceted mode, where each series has its own x values, so runs logged at
 * different steps or times overlay without merging their x axes. uPlot thins a series to about
 * four points per pixel column while drawing, which keeps 100k-point series fast.
 */
import uPlot from "uplot";
import { withAlpha } from "./colors.ts";
import {
  formatDuration,
  formatShortWallTime,
  formatTick,
  formatValue,
  formatX,
  type XAxis,
} from "./format.ts";
import { smooth } from "./smoothing.ts";
import type { Series } from "./store.ts";

export interface ChartSettings {
  smoothing: number;
  xAxis: XAxis;
  logY: boolean;
}

export interface ChartRun {
  series: Series;
  colour: string;
  /** Steps of the run's SessionLog STARTs after its first: where it resumed. */
  resumes: number[];
}

/** What is drawn, for tests and the read-out: per run, x and the raw and smoothed y. */
export interface DrawnRun {
  run: string;
  x: ArrayLike<number>;
  raw: ArrayLike<number | null>;
  smoothed: ArrayLike<number | null>;
  /** The smoothed values themselves (smoothed above is what is drawn of them). */
  smoothedValues: Float64Array;
  markers: Array<{ step: number; x: number; y: number | null }>;
}

const HEIGHT = 240;

/** 1, 2, 5, 10, 20, 50, … up to 5e12. */
const STEP_INCREMENTS = Array.from({ length: 13 }, (_, k) => [1, 2, 5].map((m) => m * 10 ** k)).flat();

type Column = Float64Array | Array<number | null>;

/** y values uPlot can draw: non-finite (and, on a log axis, non-positive) become gaps. */
function drawable(values: ArrayLike<number>, logY: boolean): Column {
  let clean = true;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (!Number.isFinite(v) || (logY && v <= 0)) {
      clean = false;
      break;
    }
  }
  if (clean) return values instanceof Float64Array ? values : Float64Array.from(values);
  return Array.from(values, (v) => (Number.isFinite(v) && !(logY && v <= 0) ? v : null));
}

function xValues(series: Series, axis: XAxis): Float64Array {
  if (axis === "step") return series.step.view();
  const wall = series.wallTime.view();
  if (axis === "wall") return wall;
  const start = wall.length > 0 ? (wall[0] as number) : 0;
  return wall.map((t) => t - start);
}

export class TagChart {
  private plot: uPlot | null = null;
  private layoutKey = "";
  private drawnRuns: DrawnRun[] = [];
  private zoomed = false;
  private readonly resize: ResizeObserver;

  constructor(
    readonly tag: string,
    private readonly target: HTMLElement,
    private readonly readout: HTMLElement,
  ) {
    this.resize = new ResizeObserver(() => {
      if (this.plot) this.plot.setSize({ width: this.width(), height: HEIGHT });
    });
    this.resize.observe(target);
  }

  get drawn(): DrawnRun[] {
    return this.drawnRuns;
  }

  get uplot(): uPlot | null {
    return this.plot;
  }

  /** Redraw with these runs and settings (rebuilding the chart only when its series change). */
  render(runs: ChartRun[], settings: ChartSettings): void {
    this.drawnRuns = runs.map(({ series, resumes }) => {
      const x = xValues(series, settings.xAxis);
      const values = series.value.view();
      const smoothedValues = smooth(values, settings.smoothing);
      const raw = drawable(values, settings.logY);
      const smoothed = drawable(smoothedValues, settings.logY);
      const steps = series.step.view();
      const markers = resumes.flatMap((step) => {
        const index = steps.findIndex((s) => s >= step);
        if (index === -1) return [];
        return [{ step, x: x[index] as number, y: smoothed[index] ?? null }];
      });
      return { run: series.run, x, raw, smoothed, smoothedValues, markers };
    });
    const layoutKey = JSON.stringify([
      runs.map((r) => [r.series.run, r.colour, r.series.length === 1]),
      settings.xAxis,
      settings.logY,
      settings.smoothing > 0,
    ]);
    const data = [
      null,
      ...this.drawnRuns.flatMap((d) => [
        [d.x, d.raw],
        [d.x, d.smoothed],
      ]),
    ] as unknown as uPlot.AlignedData;
    if (this.plot && layoutKey === this.layoutKey) {
      this.plot.setData(data, !this.zoomed);
      return;
    }
    this.plot?.destroy();
    this.zoomed = false;
    this.layoutKey = layoutKey;
    this.plot = new uPlot(this.options(runs, settings), data, this.target);
    this.target.dataset.drawn = "true";
  }

  destroy(): void {
    this.resize.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }

  private width(): number {
    return Math.max(200, Math.floor(this.target.clientWidth));
  }

  private options(runs: ChartRun[], settings: ChartSettings): uPlot.Options {
    const facets: uPlot.Series.Facet[] = [
      { scale: "x", auto: true },
      { scale: "y", auto: true },
    ];
    const linear = uPlot.paths.linear?.();
    const series: uPlot.Series[] = [{}];
    for (const { series: s, colour } of runs) {
      // A series of one point (an evaluation at the end of a stage) has no line to draw: show the point.
      // (In faceted mode uPlot has no index window to walk, so the point to draw is named.)
      const points =
        s.length === 1
          ? { show: true, size: 7, fill: colour, stroke: colour, filter: () => [0] }
          : { show: false };
      const common = { facets, points, ...(linear ? { paths: linear } : {}) };
      series.push({
        ...common,
        label: `${s.run} (raw)`,
        stroke: withAlpha(colour, settings.smoothing > 0 ? 0.28 : 0.9),
        width: 1,
      });
      series.push({ ...common, label: s.run, stroke: colour, width: 1.6, show: settings.smoothing > 0 });
    }
    const xFormat =
      settings.xAxis === "wall"
        ? {}
        : {
            // Steps are whole numbers: no ticks between them.
            ...(settings.xAxis === "step" ? { incrs: STEP_INCREMENTS } : {}),
            values: (_u: uPlot, splits: number[]) =>
              splits.map((v) => (settings.xAxis === "step" ? formatX("step", v) : formatDuration(v))),
          };
    return {
      mode: 2,
      width: this.width(),
      height: HEIGHT,
      legend: { show: false },
      cursor: {
        drag: { x: true, y: false, setScale: true },
        points: { show: false },
        dataIdx: () => null,
      },
      scales: {
        // One point (or all at one x) has no extent: give it one so it is drawn mid-chart.
        x: {
          time: settings.xAxis === "wall",
          auto: true,
          range: (_u, min, max) => (min === max ? [min - 1, max + 1] : [min, max]),
        },
        y: settings.logY ? { distr: 3, log: 10, auto: true } : { auto: true },
      },
      axes: [
        { ...xFormat, stroke: "#555", grid: { stroke: "#eee" }, ticks: { stroke: "#ddd" } },
        {
          values: (_u: uPlot, splits: Array<number | null>) => splits.map(formatTick),
          stroke: "#555",
          size: 60,
          grid: { stroke: "#eee" },
          ticks: { stroke: "#ddd" },
        },
      ],
      series,
      hooks: {
        draw: [(u) => this.drawMarkers(u, runs)],
        setCursor: [(u) => this.showReadout(u, runs)],
        setSelect: [
          (u) => {
            if (u.select.width > 0) this.zoomed = true;
          },
        ],
        ready: [
          (u) =>
            u.over.addEventListener("dblclick", () => {
              this.zoomed = false;
            }),
        ],
      },
    };
  }

  /** A dashed line and a ring where each run resumed (its later SessionLog STARTs). */
  private drawMarkers(u: uPlot, runs: ChartRun[]): void {
    const { ctx } = u;
    const { left, top, width, height } = u.bbox;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    const ratio = devicePixelRatio || 1;
    for (const [index, drawn] of this.drawnRuns.entries()) {
      const colour = runs[index]?.colour ?? "#000";
      for (const marker of drawn.markers) {
        const px = u.valToPos(marker.x, "x", true);
        ctx.strokeStyle = withAlpha(colour, 0.6);
        ctx.lineWidth = ratio;
        ctx.setLineDash([4 * ratio, 4 * ratio]);
        ctx.beginPath();
        ctx.moveTo(px, top);
        ctx.lineTo(px, top + height);
        ctx.stroke();
        if (marker.y !== null) {
          const py = u.valToPos(marker.y, "y", true);
          ctx.setLineDash([]);
          ctx.lineWidth = 2 * ratio;
          ctx.fillStyle = "#fff";
          ctx.strokeStyle = colour;
          ctx.beginPath();
          ctx.arc(px, py, 4.5 * ratio, 0, 2 * Math.PI);
          ctx.fill();
          ctx.stroke();
        }
      }
    }
    ctx.restore();
  }

  /** Under the chart: each run's point nearest the cursor's x, smoothed and raw. */
  private showReadout(u: uPlot, runs: ChartRun[]): void {
    const left = u.cursor.left ?? -1;
    if (left < 0) {
      this.readout.hidden = true;
      return;
    }
    const xAt = u.posToVal(left, "x");
    const rows: string[] = [];
    for (const [index, drawn] of this.drawnRuns.entries()) {
      const i = nearest(drawn.x, xAt);
      const run = runs[index];
      if (i < 0 || !run) continue;
      const s = run.series;
      const step = s.step.view()[i] as number;
      const value = s.value.view()[i] as number;
      const smoothed = drawn.smoothedValues[i] as number;
      const wall = s.wallTime.view()[i] as number;
      const relative = wall - (s.wallTime.view()[0] as number);
      rows.push(
        `<tr><td><i style="background:${run.colour}"></i>${escapeHtml(s.run)}</td><td>${formatValue(smoothed)}</td><td>${formatValue(value)}</td><td>${formatX("step", step)}</td><td>${formatDuration(relative)}</td><td>${formatShortWallTime(wall)}</td></tr>`,
      );
    }
    this.readout.innerHTML = `<table><thead><tr><th>Run</th><th>Smoothed</th><th>Value</th><th>Step</th><th>Relative</th><th>Time</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
    this.readout.hidden = rows.length === 0;
  }
}

/** Index of the point whose x is nearest `x` (binary search when x only grows, else a scan). */
function nearest(xs: ArrayLike<number>, x: number): number {
  const n = xs.length;
  if (n === 0) return -1;
  let sorted = true;
  for (let i = 1; i < n && sorted; i++) sorted = (xs[i] as number) >= (xs[i - 1] as number);
  if (!sorted) {
    let best = 0;
    for (let i = 1; i < n; i++)
      if (Math.abs((xs[i] as number) - x) < Math.abs((xs[best] as number) - x)) best = i;
    return best;
  }
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((xs[mid] as number) < x) lo = mid + 1;
    else hi = mid;
  }
  if (lo > 0 && Math.abs((xs[lo - 1] as number) - x) <= Math.abs((xs[lo] as number) - x)) return lo - 1;
  return lo;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
