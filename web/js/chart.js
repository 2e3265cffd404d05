// chart.js - line charts over training steps with uPlot (loaded on first
// use from /vendor/uplot/, which spinqd maps to web/node_modules/uplot/dist).
//
// A StepChart holds one Map step -> value per series; add() puts points in
// (a step seen again replaces its value, as a resumed run re-reports steps)
// and the chart redraws at most once per animation frame, however fast the
// points come. The container's data-points attribute is the number of steps
// drawn, for anyone (tests, people) who wants to know without pixels.
import { h, replace } from './dom.js';

let uplot = null;
export function loadUplot() {
  if (!uplot) uplot = import('/vendor/uplot/uPlot.esm.js').then((m) => m.default);
  return uplot;
}

export const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#be185d', '#4d7c0f',
  '#7c3aed', '#b45309', '#0f766e', '#6b7280'];

// Steps of every map, sorted, and each map's values at them (null: none).
export function align(maps) {
  const steps = new Set();
  for (const m of maps) for (const k of m.keys()) steps.add(k);
  const xs = [...steps].sort((a, b) => a - b);
  return [xs, ...maps.map((m) => xs.map((x) => (m.has(x) ? m.get(x) : null)))];
}

// Exponential moving average of [[step, value], ...] sorted by step, with
// TensorBoard's debiasing (the first points are not pulled towards 0):
// weight 0 is the raw curve, 0.99 nearly flat.
export function ema(points, weight) {
  let acc = 0;
  let n = 0;
  return points.map(([step, v]) => {
    acc = acc * weight + (1 - weight) * v;
    n += 1;
    return [step, weight > 0 ? acc / (1 - weight ** n) : v];
  });
}

export class StepChart {
  // series: [{label, color, scale ('y' or a second scale shown on the right), log, width,
  //           derive: {from: i, fn(points) -> points}: drawn from series i each frame}]
  // onDraw(data): after each redraw, with uPlot's aligned data.
  constructor(container, { series, height = 260, onDraw = null }) {
    this.el = container;
    this.onDraw = onDraw;
    this.series = series;
    this.height = height;
    this.maps = series.map(() => new Map());
    this.plot = null;
    this.pending = false;
    this.dead = false;
    this.el.classList.add('chart');
    this.el.dataset.points = '0';
    this.canvas = h('div.chart-canvas');
    replace(this.el, this.canvas);
    this.ready = this.init();
  }

  async init() {
    let U;
    try {
      U = await loadUplot();
    } catch {
      replace(this.canvas, h('p.muted', 'Charts need uPlot: run `npm ci` in web/ (make deps) on the daemon\'s host.'));
      return;
    }
    if (this.dead) return;
    const scales = { x: { time: false } };
    const axes = [{ label: 'step' }];
    const seen = new Set();
    for (const s of this.series) {
      const sc = s.scale || 'y';
      if (seen.has(sc)) continue;
      seen.add(sc);
      scales[sc] = s.log ? { distr: 3 } : {};
      axes.push({ scale: sc, label: s.axisLabel || s.label, side: seen.size === 1 ? 3 : 1,
        grid: { show: seen.size === 1 }, size: 60 });
    }
    const opts = {
      width: Math.max(300, this.el.clientWidth || 600),
      height: this.height,
      scales,
      axes,
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      series: [{ label: 'step' }, ...this.series.map((s) => ({
        label: s.label, stroke: s.color, width: s.width ?? 1.5, scale: s.scale || 'y', spanGaps: true,
        points: { show: false }, value: (u, v) => (v === null || v === undefined ? '—' : Number(v.toPrecision(5))),
      }))],
    };
    this.plot = new U(opts, align(this.maps), this.canvas);
    this.resize = new ResizeObserver(() => {
      const w = this.el.clientWidth;
      if (this.plot && w > 0 && Math.abs(w - this.plot.width) > 4) this.plot.setSize({ width: w, height: this.height });
    });
    this.resize.observe(this.el);
    this.schedule();
  }

  // Adds a point to series i.
  add(i, step, value) {
    if (value === null || value === undefined || !Number.isFinite(value)) return;
    this.maps[i].set(step, value);
    this.schedule();
  }

  // Replaces series i with [[step, value], ...].
  setSeries(i, points) {
    this.maps[i] = new Map(points.filter((p) => Number.isFinite(p[1])).map((p) => [p[0], p[1]]));
    this.schedule();
  }

  // Redraws (a derived series' rule changed, say).
  redraw() { this.schedule(); }

  schedule() {
    if (this.pending || this.dead) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      if (this.dead) return;
      this.series.forEach((s, k) => {
        if (!s.derive) return;
        const pts = [...this.maps[s.derive.from].entries()].sort((a, b) => a[0] - b[0]);
        this.maps[k] = new Map(s.derive.fn(pts));
      });
      const data = align(this.maps);
      this.el.dataset.points = String(data[0].length);
      if (this.plot) this.plot.setData(data);
      if (this.onDraw) this.onDraw(data);
    });
  }

  destroy() {
    this.dead = true;
    if (this.resize) this.resize.disconnect();
    if (this.plot) this.plot.destroy();
  }
}
