/* opsreg dashboard: shared state, constants and small helpers (DOM, formatting, the
 * address's hash). Every other module imports from here; it imports nothing.
 */

export const $ = (id) => document.getElementById(id);
export const LIVE = new Set(['provisioning', 'running', 'retiring']);
export const OUTCOMES = ['completed', 'failed', 'cancelled', 'aborted', 'terminated', 'retired'];
export const COLORS = {
  completed: '#1f9d55', failed: '#d64545', cancelled: '#c9821b', aborted: '#b5651d',
  terminated: '#7d3c98', retired: '#8a93a3',
};
export const POLL_MS = 2000; // the visible page is re-read this often (new and progressing ops)
export const STATS_MS = 5000;
export const SLOW_READ_MS = 3000; // a page read slower than this: the registry is not answering
export const STREAM_ROWS = 1000; // completion rows kept in the DOM
export const HISTORY = 200; // completions replayed into the stream and charts on load
export const CHART_SECONDS = 600;

export const state = {
  registry: null,
  token: sessionStorage.getItem('opsreg.token'),
  cursors: [null], // cursors[i] is the `after` of page i
  page: 0,
  next: null,
  items: [],
  sort: { key: 'display_name', desc: false },
  order: 'name', // the server's order: name | newest | oldest (docs/http.md §2)
  selected: null,
  loading: false,
  loadSeq: 0,
  noProgressLog: false, // the registry answered UnknownMethod to progress_log
  needToken: false, // a call answered 401: wait for the token before opening the feed
  upstreamDown: false, // the last read answered 503 / could not reach the gateway
  downAtSeq: null, // the feed's last seq when reads began to fail
  watermark: 0,
  terminal: new Map(), // op id -> feed entry, so an older page read never undoes the feed
  changed: new Set(), // ids on this page the feed changed since the last flush
};
export const feed = {
  es: null, lastSeq: null, helloWatermark: 0, opened: false, reconnecting: false,
  retryTimer: null, backoff: 1000, queue: [], flushTimer: null,
};
export const chart = { buckets: new Map() }; // second -> {outcomes: {tag: n}, delays: [ms]}
export const resumed = { seq: null, until: 0 };

// Exposed for the browser tests and bench/dashboard.py (read-only use).
export const dash = { firstRenderMs: null, duplicates: 0, holes: [], gaps: [], state, feed };
window.opsregDash = dash;

// ---------------------------------------------------------------- helpers

export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null) continue;
      if (k === 'text') node.textContent = String(v);
      else if (k === 'class') node.className = v;
      else if (k === 'data') Object.assign(node.dataset, v);
      else node.setAttribute(k, v);
    }
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

export function svgEl(tag, attrs) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  return node;
}

export const pad2 = (n) => String(n).padStart(2, '0');
export function fmtTime(ms) {
  if (ms === null || ms === undefined) return '–';
  const d = new Date(ms);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}
export function fmtDateTime(ms) {
  if (ms === null || ms === undefined) return '–';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${fmtTime(ms)}` +
    `.${String(d.getMilliseconds()).padStart(3, '0')}`;
}
export function fmtDur(ms) {
  if (ms === null || ms === undefined || ms < 0) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${pad2(Math.floor(s % 60))}s`;
  return `${Math.floor(m / 60)}h ${pad2(m % 60)}m`;
}
export const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
export const statusOf = (outcome) => (outcome && outcome.outcome) || null;
export const reg = () => encodeURIComponent(state.registry);

// ---------------------------------------------------------------- hash state

export function readHash() {
  return new URLSearchParams(location.hash.replace(/^#/, ''));
}
export function writeHash() {
  const p = new URLSearchParams();
  if (state.registry) p.set('r', state.registry);
  if (state.selected) p.set('op', state.selected);
  const h = `#${p}`;
  if (location.hash !== h) history.replaceState(null, '', h);
}

// ---------------------------------------------------------------- timing

export function debounce(fn, ms) {
  let t = null;
  return () => { clearTimeout(t); t = setTimeout(fn, ms); };
}
