/* opsreg dashboard: the completion feed (EventSource, reconnect with backoff) and the
 * connection state shown in the top bar.
 */
import { $, STREAM_ROWS, HISTORY, state, feed, chart, resumed, dash, el, fmtDateTime, statusOf,
  reg } from './util.js';
import { statusBadge, applyToTable, redrawChanged } from './table.js';
import { loadDetail } from './panel.js';

// ---------------------------------------------------------------- connection state

export function renderConn() {
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
export function noteDown() {
  if (!state.upstreamDown) {
    state.downAtSeq = feed.lastSeq; // the feed is complete up to here
    resumed.seq = null;
  }
  state.upstreamDown = true;
  renderConn();
}
/** Reads answer again. Unless the feed's own reconnect said where it resumed (its
 * `hello`), the feed stayed open through the outage and goes on after `downAtSeq`. */
export function noteUp() {
  if (state.upstreamDown) {
    state.upstreamDown = false;
    if (resumed.seq === null) {
      resumed.seq = state.downAtSeq ?? feed.lastSeq ?? 0;
      resumed.until = Date.now() + 30000;
    }
  }
  renderConn();
}

// ---------------------------------------------------------------- the feed (SSE)

export function feedUrl(after) {
  const p = new URLSearchParams();
  p.set('after', String(after));
  if (state.token) p.set('access_token', state.token);
  return `/v1/registries/${reg()}/feed?${p}`;
}

export function openFeed(after) {
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

export function closeFeed() {
  clearTimeout(feed.retryTimer);
  if (feed.es) feed.es.close();
  feed.es = null;
}

export function receive(entry) {
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

export function scheduleFlush() {
  if (feed.flushTimer === null) feed.flushTimer = setTimeout(flushStream, 40);
}

/** Completion rows go to the DOM in batches, newest on top, at most STREAM_ROWS kept. */
export function flushStream() {
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

export function streamRow(item) {
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
