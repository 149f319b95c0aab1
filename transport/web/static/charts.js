/* opsreg dashboard: the hand-drawn SVG charts (rate, outcomes, delay). */
import { $, OUTCOMES, COLORS, CHART_SECONDS, chart, el, svgEl } from './util.js';

// ---------------------------------------------------------------- charts (hand-drawn SVG)

export function drawBars(svg, columns, opts) {
  const W = 360; const H = 80; const L = 26; const B = 12; const T = 4;
  const max = Math.max(1, ...columns.map((c) => (opts.overlay
    ? Math.max(0, ...c.map((p) => p[0])) : c.reduce((s, p) => s + p[0], 0))));
  const top = niceMax(max);
  const nodes = [];
  const y = (v) => H - B - ((H - B - T) * v) / top;
  for (const frac of [0, 0.5, 1]) {
    const yy = y(top * frac);
    nodes.push(svgEl('line', { x1: L, x2: W, y1: yy, y2: yy, stroke: frac ? '#eef0f4' : '#c9ced8', 'stroke-width': 1 }));
    const label = svgEl('text', { x: L - 3, y: yy + 3, 'text-anchor': 'end' });
    label.textContent = fmtNum(top * frac);
    nodes.push(label);
  }
  const w = (W - L) / columns.length;
  columns.forEach((col, i) => {
    let base = 0;
    for (const [v, color] of col) {
      if (!v) continue;
      const y0 = opts.overlay ? y(v) : y(base + v);
      const h = opts.overlay ? y(0) - y(v) : y(base) - y(base + v);
      nodes.push(svgEl('rect', { x: L + i * w + 0.5, y: y0, width: Math.max(0.8, w - 1), height: Math.max(0.5, h), fill: color }));
      if (!opts.overlay) base += v;
    }
  });
  for (const [label, anchor, x] of [[opts.left, 'start', L], ['now', 'end', W]]) {
    const t = svgEl('text', { x, y: H - 2, 'text-anchor': anchor });
    t.textContent = label;
    nodes.push(t);
  }
  svg.replaceChildren(...nodes);
}

export function niceMax(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
export function fmtNum(v) {
  if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return String(+v.toFixed(1));
}

export function drawCharts() {
  const nowS = Math.floor(Date.now() / 1000);
  for (const s of chart.buckets.keys()) if (s < nowS - CHART_SECONDS) chart.buckets.delete(s);
  const rate = []; const delay = [];
  for (let s = nowS - 59; s <= nowS; s += 1) {
    const b = chart.buckets.get(s);
    let n = 0;
    if (b) for (const k of Object.keys(b.outcomes)) n += b.outcomes[k];
    rate.push([[n, '#2f6fde']]);
    const d = b ? b.delays.slice().sort((x, yy) => x - yy) : [];
    delay.push(d.length ? [[d[d.length - 1], '#c8d7f5'], [d[Math.floor((d.length - 1) / 2)], '#2f6fde']] : []);
  }
  drawBars($('chart-rate'), rate, { left: '-60 s' });
  const outcomes = [];
  const start = nowS - 299;
  for (let s0 = start; s0 <= nowS; s0 += 10) {
    const sum = {};
    for (let s = s0; s < s0 + 10; s += 1) {
      const b = chart.buckets.get(s);
      if (b) for (const [k, v] of Object.entries(b.outcomes)) sum[k] = (sum[k] || 0) + v;
    }
    outcomes.push(OUTCOMES.map((k) => [sum[k] || 0, COLORS[k]]));
  }
  drawBars($('chart-outcomes'), outcomes, { left: '-5 min' });
  drawBars($('chart-delay'), delay, { left: '-60 s', overlay: true });
}

export function drawLegend() {
  const box = $('outcome-legend');
  box.replaceChildren(...OUTCOMES.map((k) => {
    const sw = el('i');
    sw.style.background = COLORS[k];
    return el('span', null, sw, k);
  }));
}
