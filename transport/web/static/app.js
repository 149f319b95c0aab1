/* opsreg dashboard: one plain script, no build step, nothing fetched but the gateway's JSON
 * API (docs/http.md). Text that comes from the registry is only ever set with textContent.
 *
 * What it keeps: one page of operations (server-side paging by cursor), the last few hundred
 * completion rows, ten minutes of per-second chart buckets. Nothing grows with the registry.
 */
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const LIVE = new Set(['provisioning', 'running', 'retiring']);
  const OUTCOMES = ['completed', 'failed', 'cancelled', 'aborted', 'terminated', 'retired'];
  const COLORS = {
    completed: '#1f9d55', failed: '#d64545', cancelled: '#c9821b', aborted: '#b5651d',
    terminated: '#7d3c98', retired: '#8a93a3',
  };
  const POLL_MS = 2000; // the visible page is re-read this often (new and progressing ops)
  const STATS_MS = 5000;
  const SLOW_READ_MS = 3000; // a page read slower than this: the registry is not answering
  const STREAM_ROWS = 1000; // completion rows kept in the DOM
  const HISTORY = 200; // completions replayed into the stream and charts on load
  const CHART_SECONDS = 600;

  const state = {
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
  const feed = {
    es: null, lastSeq: null, helloWatermark: 0, opened: false, reconnecting: false,
    retryTimer: null, backoff: 1000, queue: [], flushTimer: null,
  };
  const chart = { buckets: new Map() }; // second -> {outcomes: {tag: n}, delays: [ms]}
  const resumed = { seq: null, until: 0 };

  // Exposed for the browser tests and bench/dashboard.py (read-only use).
  const dash = { firstRenderMs: null, duplicates: 0, holes: [], gaps: [], state, feed };
  window.opsregDash = dash;

  // ---------------------------------------------------------------- helpers

  function el(tag, props, ...children) {
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

  function svgEl(tag, attrs) {
    const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  const pad2 = (n) => String(n).padStart(2, '0');
  function fmtTime(ms) {
    if (ms === null || ms === undefined) return '–';
    const d = new Date(ms);
    return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  }
  function fmtDateTime(ms) {
    if (ms === null || ms === undefined) return '–';
    const d = new Date(ms);
    return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${fmtTime(ms)}` +
      `.${String(d.getMilliseconds()).padStart(3, '0')}`;
  }
  function fmtDur(ms) {
    if (ms === null || ms === undefined || ms < 0) return '–';
    if (ms < 1000) return `${Math.round(ms)} ms`;
    const s = ms / 1000;
    if (s < 60) return `${s.toFixed(1)} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${pad2(Math.floor(s % 60))}s`;
    return `${Math.floor(m / 60)}h ${pad2(m % 60)}m`;
  }
  const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
  const statusOf = (outcome) => (outcome && outcome.outcome) || null;
  const reg = () => encodeURIComponent(state.registry);

  class ApiError extends Error {
    constructor(status, cls, message, fields) {
      super(message);
      this.status = status;
      this.cls = cls;
      this.fields = fields || {};
    }
    get transient() { return this.status === 0 || this.status === 503; }
  }

  /** One JSON call to the gateway. Never logs: callers show errors in the page. */
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let resp;
    try {
      resp = await fetch(path, {
        method, headers, cache: 'no-store',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, 'Unreachable', 'the gateway cannot be reached');
    }
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (resp.ok) return data;
    const err = (data && data.error) || {};
    if (resp.status === 401) {
      state.needToken = true;
      askToken();
    }
    throw new ApiError(resp.status, err.class || `HTTP ${resp.status}`,
      err.message || resp.statusText || 'request failed', err.fields);
  }

  // ---------------------------------------------------------------- hash state

  function readHash() {
    return new URLSearchParams(location.hash.replace(/^#/, ''));
  }
  function writeHash() {
    const p = new URLSearchParams();
    if (state.registry) p.set('r', state.registry);
    if (state.selected) p.set('op', state.selected);
    const h = `#${p}`;
    if (location.hash !== h) history.replaceState(null, '', h);
  }

  // ---------------------------------------------------------------- connection state

  function renderConn() {
    const node = $('conn');
    let cls = 'conn-live';
    let text = 'live';
    if (!feed.opened && !state.upstreamDown && resumed.seq === null && !feed.reconnecting) {
      cls = 'conn-connecting';
      text = 'connecting…';
    } else if (state.upstreamDown || feed.reconnecting) {
      cls = 'conn-reconnecting';
      text = 'reconnecting…';
    } else if (resumed.seq !== null && Date.now() < resumed.until) {
      cls = 'conn-resumed';
      text = `reconnected, resumed after seq ${resumed.seq}`;
    }
    node.className = `conn ${cls}`;
    if (node.textContent !== text) node.textContent = text;
    $('seen-seq').textContent = feed.lastSeq === null ? '–' : String(feed.lastSeq);
    $('watermark').textContent = String(Math.max(state.watermark, feed.lastSeq || 0));
  }

  /** Reads fail or hang: the registry server (or the gateway) is not answering. */
  function noteDown() {
    if (!state.upstreamDown) {
      state.downAtSeq = feed.lastSeq; // the feed is complete up to here
      resumed.seq = null;
    }
    state.upstreamDown = true;
    renderConn();
  }
  /** Reads answer again. Unless the feed's own reconnect said where it resumed (its
   * `hello`), the feed stayed open through the outage and goes on after `downAtSeq`. */
  function noteUp() {
    if (state.upstreamDown) {
      state.upstreamDown = false;
      if (resumed.seq === null) {
        resumed.seq = state.downAtSeq ?? feed.lastSeq ?? 0;
        resumed.until = Date.now() + 30000;
      }
    }
    renderConn();
  }

  // ---------------------------------------------------------------- operations table

  function pageParams() {
    const p = new URLSearchParams();
    const name = $('f-name').value;
    if (name) p.set('name', name);
    for (const [id, key] of [['f-status', 'status'], ['f-kind', 'kind'], ['f-owner', 'owner']]) {
      const v = $(id).value.trim();
      if (v) p.set(key, v);
    }
    p.set('limit', $('f-limit').value);
    if (state.order !== 'name') p.set('order', state.order);
    const after = state.cursors[state.page];
    if (after) p.set('after', after);
    return p;
  }

  async function loadPage() {
    if (!state.registry) return;
    const mine = ++state.loadSeq;
    state.loading = true;
    // A read of one page is quick; one that takes seconds means the gateway is waiting on a
    // registry server that does not answer (it answers 503 once its call timeout passes).
    const slow = setTimeout(noteDown, SLOW_READ_MS);
    let data;
    try {
      data = await api('GET', `/v1/registries/${reg()}/operations?${pageParams()}`);
    } catch (e) {
      clearTimeout(slow);
      if (mine !== state.loadSeq) return;
      state.loading = false;
      $('ops-error').textContent = e.transient ? 'registry unreachable, retrying…' : e.message;
      if (e.transient) noteDown();
      return;
    }
    clearTimeout(slow);
    if (mine !== state.loadSeq) return; // a newer request (filter, page) superseded it
    state.loading = false;
    $('ops-error').textContent = '';
    noteUp();
    state.items = data.items || [];
    state.next = data.next || null;
    if (typeof data.watermark === 'number') state.watermark = Math.max(state.watermark, data.watermark);
    renderTable();
    renderConn();
    if (dash.firstRenderMs === null) {
      performance.mark('opsreg:first-table-render');
      dash.firstRenderMs = performance.now();
      document.body.dataset.rendered = '1';
    }
  }

  /** An item with what the feed already said about it (a page read may be older). */
  function current(item) {
    const entry = state.terminal.get(item.id);
    if (!entry || !LIVE.has(item.status)) return item;
    return Object.assign({}, item, {
      status: statusOf(entry.terminal_outcome),
      terminal_outcome: entry.terminal_outcome,
      completed_at_ms: entry.completed_at_ms,
      elapsed_ms: entry.completed_at_ms !== null
        ? Math.max(0, entry.completed_at_ms - item.created_at_ms) : item.elapsed_ms,
    });
  }

  /** The registry pages in one of three orders: by name, newest or oldest registration. */
  const SERVER_ORDER = { name: 'display_name', newest: 'created_at_ms', oldest: 'created_at_ms' };

  function sortedItems() {
    const items = state.items.map(current);
    const { key, desc } = state.sort;
    if (key === SERVER_ORDER[state.order]) return items; // as the server sent them
    const val = (it) => (key === 'elapsed' ? elapsedOf(it) : it[key]);
    items.sort((a, b) => {
      const x = val(a); const y = val(b);
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * (desc ? -1 : 1);
    });
    return items;
  }

  function elapsedOf(it) {
    if (!LIVE.has(it.status)) return it.elapsed_ms;
    return Date.now() - it.created_at_ms; // as the registry's elapsed_ms: since registration
  }

  function statusBadge(status) {
    return el('span', { class: `badge s-${status}`, text: status });
  }

  function rowFor(it) {
    const tr = el('tr', { data: { id: it.id, status: it.status } });
    const seen = state.terminal.get(it.id);
    if (seen && seen.shownAt !== null) tr.dataset.updatedAt = String(seen.shownAt);
    if (it.id === state.selected) tr.classList.add('selected');
    const progress = el('td');
    if (it.last_progress) {
      const pct = it.last_progress.percent;
      if (typeof pct === 'number') {
        const bar = el('span', { class: 'bar' }, el('i'));
        bar.firstChild.style.width = `${Math.max(0, Math.min(100, pct))}%`;
        progress.append(bar);
      }
      progress.append(el('span', { text: it.last_progress.message }));
      progress.title = it.last_progress.message;
    } else if (it.progress_count) {
      progress.textContent = `${it.progress_count} updates`;
    }
    tr.append(
      el('td', { text: it.display_name || '(no name)', title: it.display_name }),
      el('td', null, statusBadge(it.status)),
      el('td', { class: 'dim', text: it.kind }),
      el('td', { class: 'dim', text: it.owner_session_id, title: it.owner_session_id }),
      el('td', { class: 'mono', text: fmtTime(it.created_at_ms), title: fmtDateTime(it.created_at_ms) }),
      el('td', { class: 'mono elapsed', text: fmtDur(elapsedOf(it)) }),
      progress,
    );
    return tr;
  }

  function renderTable() {
    const body = $('ops-body');
    const frag = document.createDocumentFragment();
    for (const it of sortedItems()) frag.append(rowFor(it));
    body.replaceChildren(frag);
    $('ops-empty').hidden = state.items.length > 0;
    $('prev').disabled = state.page === 0;
    $('next').disabled = !state.next;
    $('page-info').textContent = `page ${state.page + 1} · ${state.items.length} shown`;
    const { key, desc } = state.sort;
    for (const th of document.querySelectorAll('th[data-sort]')) {
      th.classList.toggle('sorted', th.dataset.sort === key);
      th.classList.toggle('desc', th.dataset.sort === key && desc);
    }
    const server = { name: 'by name', newest: 'newest first', oldest: 'oldest first' }[state.order];
    $('sort-note').textContent = key === SERVER_ORDER[state.order]
      ? `${server} (server order)`
      : `sorted by ${headerLabel(key)} within this page; pages are ${server} (server order)`;
  }
  const headerLabel = (key) => document.querySelector(`th[data-sort="${key}"]`).textContent.replace(/[↓↑ ]+$/, '');

  /** A completion from the feed: its row changes at the next flush (within 40 ms), not at
   * the next page read. The table is drawn again (not the row alone) so a sort by status
   * stays true. */
  function applyToTable(entry) {
    // Only what the row needs (an outcome can carry a large result): 20,000 of these are small.
    state.terminal.set(entry.operation_id, {
      terminal_outcome: { outcome: statusOf(entry.terminal_outcome) },
      completed_at_ms: entry.completed_at_ms,
      shownAt: null,
    });
    if (state.terminal.size > 20000) {
      const oldest = state.terminal.keys().next().value;
      state.terminal.delete(oldest);
    }
    if (state.items.some((it) => it.id === entry.operation_id)) state.changed.add(entry.operation_id);
  }

  function redrawChanged() {
    if (state.changed.size === 0) return;
    const now = Date.now();
    for (const id of state.changed) {
      const seen = state.terminal.get(id);
      if (seen) seen.shownAt = now; // when the feed changed this row (data-updated-at)
    }
    renderTable();
    for (const id of state.changed) {
      const row = document.querySelector(`#ops-body tr[data-id="${CSS.escape(id)}"]`);
      if (row) row.classList.add('flash');
    }
    state.changed.clear();
  }

  function tickElapsed() {
    for (const tr of document.querySelectorAll('#ops-body tr')) {
      if (!LIVE.has(tr.dataset.status)) continue;
      const item = state.items.find((it) => it.id === tr.dataset.id);
      if (item) tr.querySelector('.elapsed').textContent = fmtDur(elapsedOf(item));
    }
  }

  function resetPaging() {
    state.cursors = [null];
    state.page = 0;
    loadPage();
  }

  // ---------------------------------------------------------------- counts (stats)

  async function loadStats() {
    if (!state.registry) return;
    let data;
    try {
      data = await api('GET', `/v1/registries/${reg()}/stats`);
    } catch (e) {
      if (e.transient) noteDown();
      return;
    }
    noteUp();
    if (typeof data.watermark === 'number') state.watermark = Math.max(state.watermark, data.watermark);
    const box = $('counts');
    if (!data.counts) { // a gateway whose stats carry no counts: no chips
      box.replaceChildren();
      renderConn();
      return;
    }
    const counts = data.counts;
    const active = $('f-status').value;
    const chips = [];
    let total = 0;
    for (const n of Object.values(counts)) total += n;
    const all = el('span', { class: `chip${active ? '' : ' active'}`, data: { status: '' } }, 'all');
    all.append(el('b', { text: String(total) }));
    chips.push(all);
    for (const status of ['provisioning', 'running', 'retiring', ...OUTCOMES]) {
      if (!counts[status]) continue;
      const chip = el('span', { class: `chip${active === status ? ' active' : ''}`, data: { status } },
        status);
      chip.append(el('b', { text: String(counts[status]) }));
      chips.push(chip);
    }
    box.replaceChildren(...chips);
    renderConn();
  }

  // ---------------------------------------------------------------- the feed (SSE)

  function feedUrl(after) {
    const p = new URLSearchParams();
    p.set('after', String(after));
    if (state.token) p.set('access_token', state.token);
    return `/v1/registries/${reg()}/feed?${p}`;
  }

  function openFeed(after) {
    closeFeed();
    const es = new EventSource(feedUrl(after));
    feed.es = es;
    es.addEventListener('hello', (ev) => {
      if (es !== feed.es) return;
      const hello = JSON.parse(ev.data);
      const wasReconnecting = feed.reconnecting || feed.opened;
      // (watermark is null when the gateway could not reach the registry as it started)
      feed.helloWatermark = hello.watermark ?? hello.after;
      state.watermark = Math.max(state.watermark, hello.watermark || 0);
      if (feed.lastSeq === null) feed.lastSeq = hello.after;
      feed.opened = true;
      feed.backoff = 1000;
      if (wasReconnecting) {
        feed.reconnecting = false;
        resumed.seq = hello.after;
        resumed.until = Date.now() + 30000;
      }
      renderConn();
    });
    es.addEventListener('completion', (ev) => {
      if (es !== feed.es) return;
      receive(JSON.parse(ev.data));
    });
    es.addEventListener('gap', (ev) => {
      if (es !== feed.es) return;
      const gap = JSON.parse(ev.data);
      if (feed.lastSeq !== null && gap.from !== feed.lastSeq + 1) dash.holes.push([feed.lastSeq + 1, gap.from - 1]);
      dash.gaps.push([gap.from, gap.through]);
      feed.queue.push({ gap });
      if (feed.lastSeq === null || gap.through > feed.lastSeq) feed.lastSeq = gap.through;
      scheduleFlush();
    });
    es.onerror = () => {
      if (es !== feed.es) return;
      feed.reconnecting = true;
      if (es.readyState === EventSource.CLOSED) {
        // The gateway answered with an error (not a stream): the browser will not retry by
        // itself, so reopen from the last seq this page holds, backing off up to 5 s.
        clearTimeout(feed.retryTimer);
        feed.retryTimer = setTimeout(() => {
          openFeed(feed.lastSeq === null ? Math.max(0, state.watermark - HISTORY) : feed.lastSeq);
        }, feed.backoff);
        feed.backoff = Math.min(5000, feed.backoff * 2);
      }
      renderConn();
    };
  }

  function closeFeed() {
    clearTimeout(feed.retryTimer);
    if (feed.es) feed.es.close();
    feed.es = null;
  }

  function receive(entry) {
    const seq = entry.seq;
    if (feed.lastSeq !== null && seq <= feed.lastSeq) {
      dash.duplicates += 1; // never expected: the feed sends each seq once
      return;
    }
    if (feed.lastSeq !== null && seq !== feed.lastSeq + 1) dash.holes.push([feed.lastSeq + 1, seq - 1]);
    feed.lastSeq = seq;
    const live = seq > feed.helloWatermark;
    const now = Date.now();
    const at = entry.completed_at_ms || now;
    const second = Math.floor(at / 1000);
    let b = chart.buckets.get(second);
    if (!b) { b = { outcomes: {}, delays: [] }; chart.buckets.set(second, b); }
    const tag = statusOf(entry.terminal_outcome) || 'completed';
    b.outcomes[tag] = (b.outcomes[tag] || 0) + 1;
    if (live && entry.completed_at_ms) b.delays.push(Math.max(0, now - entry.completed_at_ms));
    feed.queue.push({ entry });
    applyToTable(entry);
    if (state.selected === entry.operation_id) loadDetail();
    scheduleFlush();
  }

  function scheduleFlush() {
    if (feed.flushTimer === null) feed.flushTimer = setTimeout(flushStream, 40);
  }

  /** Completion rows go to the DOM in batches, newest on top, at most STREAM_ROWS kept. */
  function flushStream() {
    feed.flushTimer = null;
    const list = $('stream');
    const items = feed.queue.splice(0).slice(-STREAM_ROWS);
    const frag = document.createDocumentFragment();
    for (let i = items.length - 1; i >= 0; i -= 1) frag.append(streamRow(items[i]));
    list.prepend(frag);
    while (list.childElementCount > STREAM_ROWS) list.lastElementChild.remove();
    $('stream-info').textContent = feed.lastSeq === null ? '' : `up to seq ${feed.lastSeq}`;
    redrawChanged();
    renderConn();
  }

  function streamRow(item) {
    if (item.gap) {
      return el('li', { class: 'gap', data: { gapFrom: item.gap.from, gapThrough: item.gap.through },
        text: `seqs ${item.gap.from}–${item.gap.through} are no longer held by the registry (retention)` });
    }
    const e = item.entry;
    const tag = statusOf(e.terminal_outcome) || '?';
    const li = el('li', { data: { seq: e.seq, id: e.operation_id }, title: fmtDateTime(e.completed_at_ms) },
      el('span', { class: 'seq', text: `#${e.seq}` }),
      el('span', { class: 'name', text: e.display_name || e.operation_id }),
      statusBadge(tag));
    return li;
  }

  // ---------------------------------------------------------------- charts (hand-drawn SVG)

  function drawBars(svg, columns, opts) {
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

  function niceMax(v) {
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }
  function fmtNum(v) {
    if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
    if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
    return String(+v.toFixed(1));
  }

  function drawCharts() {
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

  function drawLegend() {
    const box = $('outcome-legend');
    box.replaceChildren(...OUTCOMES.map((k) => {
      const sw = el('i');
      sw.style.background = COLORS[k];
      return el('span', null, sw, k);
    }));
  }

  // ---------------------------------------------------------------- one operation

  function openDetail(id) {
    state.selected = id;
    writeHash();
    $('detail').hidden = false;
    $('d-msg').textContent = '';
    $('d-cancel').disabled = true; // until this operation's state is known
    $('d-name').textContent = '…';
    $('d-id').textContent = id;
    $('d-facts').replaceChildren();
    $('d-timeline').replaceChildren();
    for (const tr of document.querySelectorAll('#ops-body tr')) {
      tr.classList.toggle('selected', tr.dataset.id === id);
    }
    loadDetail();
  }

  function closeDetail() {
    state.selected = null;
    writeHash();
    $('detail').hidden = true;
    for (const tr of document.querySelectorAll('#ops-body tr.selected')) tr.classList.remove('selected');
  }

  let detailSeq = 0;
  async function loadDetail() {
    const id = state.selected;
    if (!id) return;
    const mine = ++detailSeq;
    let snap;
    try {
      snap = await api('GET', `/v1/registries/${reg()}/operations/${encodeURIComponent(id)}`);
    } catch (e) {
      if (mine !== detailSeq) return;
      if (e.status === 404) renderMissing(id);
      else $('d-msg').textContent = e.transient ? 'registry unreachable, retrying…' : e.message;
      return;
    }
    let log = { unavailable: 'this registry keeps only the last update' };
    if (!state.noProgressLog) {
      try {
        log = await api('POST', `/v1/registries/${reg()}/progress_log`, { op_id: id });
      } catch (e) {
        // An older server has no progress_log: ask once, then show the last update only.
        if (e.cls === 'UnknownMethod') state.noProgressLog = true;
        else log = { unavailable: e.message };
      }
    }
    if (mine !== detailSeq || state.selected !== id) return;
    renderDetail(snap, log);
  }

  function renderMissing(id) {
    $('d-name').textContent = 'not found';
    $('d-id').textContent = id;
    $('d-facts').replaceChildren();
    $('d-timeline').replaceChildren(el('li', { text: 'The registry does not hold this operation (unknown id, or forgotten by retention).' }));
    $('d-cancel').disabled = true;
  }

  /** `progress_log`'s answer as [{at_ms, message, percent}] (tolerant of its exact shape). */
  function progressEntries(log) {
    if (!log || log.unavailable) return null;
    const list = Array.isArray(log) ? log : (log.entries || log.items || log.updates || []);
    return list.map((x) => {
      if (Array.isArray(x)) return { at_ms: x[0], message: (x[1] || {}).message, percent: (x[1] || {}).percent };
      const u = x.update || x;
      return { at_ms: x.at_ms ?? null, message: u.message, percent: u.percent, number: x.number };
    });
  }

  function renderDetail(snap, log) {
    $('d-name').textContent = snap.display_name || '(no name)';
    $('d-id').textContent = snap.id;
    const facts = [
      ['status', statusBadge(snap.status)],
      ['kind', snap.kind],
      ['owner', snap.owner_session_id || '–'],
      ['elapsed', fmtDur(elapsedOf(snap))],
      ['progress updates', String(snap.progress_count)],
      ['watchers', String(snap.watcher_count)],
    ];
    if (snap.child_session_id) facts.push(['child session', snap.child_session_id]);
    if (snap.peer_handle) {
      facts.push(['peer', `${snap.peer_handle.peer_name} (${snap.peer_handle.peer_id}) at ${snap.peer_handle.address}`]);
    }
    $('d-facts').replaceChildren(...facts.flatMap(([k, v]) => [
      el('dt', { text: k }), typeof v === 'string' ? el('dd', { text: v }) : el('dd', null, v)]));
    $('d-cancel').disabled = !LIVE.has(snap.status);

    const items = [];
    const item = (cls, title, when, ...body) => items.push(el('li', { class: cls },
      el('div', null, el('b', { text: title }), ' ',
        when === null || when === undefined ? null : el('span', { class: 'when', text: fmtDateTime(when) })),
      ...body));
    item('', 'registered', snap.created_at_ms, el('div', { class: 'dim', text: `${snap.kind}, owner ${snap.owner_session_id || '–'}` }));
    if (snap.started_at_ms !== null && snap.started_at_ms !== undefined) item('', 'started', snap.started_at_ms);
    const entries = progressEntries(log);
    if (entries) {
      const missing = entries.length && typeof entries[0].number === 'number'
        ? entries[0].number - 1 : snap.progress_count - entries.length;
      if (missing > 0) items.push(el('li', { class: 'dim', text: `${plural(missing, 'earlier progress update')} not kept` }));
      for (const p of entries) item('t-progress', progressText(p), p.at_ms);
    } else if (snap.last_progress) {
      if (snap.progress_count > 1) {
        items.push(el('li', { class: 'dim', text: `${plural(snap.progress_count - 1, 'earlier progress update')} (${log.unavailable})` }));
      }
      item('t-progress', progressText(snap.last_progress), null);
    }
    const o = snap.terminal_outcome;
    if (o) {
      const tag = statusOf(o);
      const body = [];
      if (tag === 'completed' && o.result) {
        const r = o.result;
        body.push(el('div', { class: 'dim', text: `duration ${fmtDur(r.duration_ms)} · tokens ${r.tokens_used}${r.is_error ? ' · marked as error' : ''}` }));
        body.push(el('pre', { text: r.content }));
      } else if (tag === 'failed') {
        body.push(el('pre', { text: o.error }));
      } else if (o.reason) {
        body.push(el('div', { text: `reason: ${o.reason}` }));
      }
      item(`t-terminal t-${tag}`, tag, snap.completed_at_ms, ...body);
    } else {
      items.push(el('li', { class: 'dim', text: `still ${snap.status} (${fmtDur(elapsedOf(snap))})` }));
    }
    $('d-timeline').replaceChildren(...items);
  }

  function progressText(p) {
    const pct = typeof p.percent === 'number' ? `${Math.round(p.percent)}% ` : '';
    return `progress: ${pct}${p.message || ''}`;
  }

  async function cancelSelected() {
    const id = state.selected;
    if (!id) return;
    $('d-cancel').disabled = true;
    $('d-msg').textContent = '';
    try {
      await api('POST', `/v1/registries/${reg()}/cancel_operation`, { op_id: id, reason: 'cancelled from the dashboard' });
    } catch (e) {
      $('d-msg').textContent = `${e.cls}: ${e.message}`;
      $('d-cancel').disabled = false;
      return;
    }
    loadDetail();
    loadPage();
    loadStats();
  }

  // ---------------------------------------------------------------- token

  function askToken() {
    const box = $('auth');
    if (!box.hidden) return;
    box.hidden = false;
    $('auth-token').focus();
  }

  // ---------------------------------------------------------------- registries

  async function loadRegistries() {
    // The registry named in the address (else "default") is opened at once, beside the list
    // of registries: the first table does not wait for that extra round trip.
    const want = readHash().get('r') || 'default';
    const op = readHash().get('op'); // read first: switching registries rewrites the address
    if (state.registry === null) switchRegistry(want);
    let data;
    try {
      data = await api('GET', '/v1/registries');
    } catch (e) {
      $('ops-error').textContent = e.message;
      if (e.transient) setTimeout(loadRegistries, 2000);
      return;
    }
    const names = data.registries || [];
    const select = $('registry');
    select.replaceChildren(...names.map((n) => el('option', { value: n, text: n })));
    const chosen = names.includes(want) ? want : (names.includes('default') ? 'default' : names[0]);
    if (chosen) {
      select.value = chosen;
      if (chosen !== state.registry) switchRegistry(chosen);
    }
    if (op) openDetail(op);
  }

  async function switchRegistry(name) {
    closeFeed();
    state.registry = name;
    state.noProgressLog = false;
    state.items = [];
    state.terminal.clear();
    state.changed.clear();
    state.watermark = 0;
    Object.assign(feed, { lastSeq: null, helloWatermark: 0, opened: false, reconnecting: false, queue: [] });
    chart.buckets.clear();
    resumed.seq = null;
    $('stream').replaceChildren();
    closeDetail();
    state.cursors = [null];
    state.page = 0;
    await loadPage();
    if (state.needToken) return; // reads need the token: the form is up, it reopens all this
    openFeed(Math.max(0, state.watermark - HISTORY));
    loadStats();
  }

  // ---------------------------------------------------------------- wiring

  function debounce(fn, ms) {
    let t = null;
    return () => { clearTimeout(t); t = setTimeout(fn, ms); };
  }

  function wire() {
    $('registry').addEventListener('change', (ev) => switchRegistry(ev.target.value));
    const refilter = debounce(resetPaging, 200);
    $('f-name').addEventListener('input', refilter);
    $('f-owner').addEventListener('input', refilter);
    for (const id of ['f-status', 'f-kind', 'f-limit']) $(id).addEventListener('change', () => { resetPaging(); loadStats(); });
    $('filters').addEventListener('submit', (ev) => { ev.preventDefault(); resetPaging(); });
    $('next').addEventListener('click', () => {
      if (!state.next) return;
      state.cursors[state.page + 1] = state.next;
      state.page += 1;
      loadPage();
    });
    $('prev').addEventListener('click', () => {
      if (state.page === 0) return;
      state.page -= 1;
      loadPage();
    });
    for (const header of document.querySelectorAll('th[data-sort]')) {
      header.addEventListener('click', () => {
        const key = header.dataset.sort;
        if (key === 'display_name' || key === 'created_at_ms') {
          // An order the registry pages in: a new first page, in that order.
          const order = key === 'display_name' ? 'name'
            : (state.order === 'newest' ? 'oldest' : 'newest');
          state.order = order;
          state.sort = { key, desc: order === 'newest' };
          resetPaging();
          return;
        }
        state.sort = { key, desc: state.sort.key === key ? !state.sort.desc : false };
        renderTable();
      });
    }
    $('ops-body').addEventListener('click', (ev) => {
      const tr = ev.target.closest('tr');
      if (tr && tr.dataset.id) openDetail(tr.dataset.id);
    });
    $('stream').addEventListener('click', (ev) => {
      const li = ev.target.closest('li');
      if (li && li.dataset.id) openDetail(li.dataset.id);
    });
    $('counts').addEventListener('click', (ev) => {
      const chip = ev.target.closest('.chip');
      if (!chip) return;
      $('f-status').value = chip.dataset.status;
      resetPaging();
      loadStats();
    });
    $('d-close').addEventListener('click', closeDetail);
    $('d-cancel').addEventListener('click', cancelSelected);
    document.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') closeDetail(); });
    window.addEventListener('hashchange', () => { // a link to #r=…&op=…, or the back button
      const p = readHash();
      const op = p.get('op');
      const r = p.get('r');
      if (r && r !== state.registry && [...$('registry').options].some((o) => o.value === r)) {
        $('registry').value = r;
        switchRegistry(r);
      }
      if (op && op !== state.selected) openDetail(op);
      else if (!op && state.selected) closeDetail();
    });
    $('auth-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const token = $('auth-token').value.trim();
      if (!token) return;
      state.token = token;
      sessionStorage.setItem('opsreg.token', token);
      $('auth').hidden = true;
      state.needToken = false;
      state.registry = null;
      loadRegistries();
    });

    setInterval(() => {
      if (document.hidden || !state.registry) return;
      if (!state.loading) loadPage();
      if (state.selected) loadDetail();
    }, POLL_MS);
    setInterval(() => { if (!document.hidden) loadStats(); }, STATS_MS);
    setInterval(() => { drawCharts(); tickElapsed(); renderConn(); }, 1000);
  }

  drawLegend();
  drawCharts();
  wire();
  loadRegistries();
})();
