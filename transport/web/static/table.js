/* opsreg dashboard: the operations table (filters, server-side paging by cursor, sorting)
 * and the status counts above it.
 */
import { $, LIVE, SLOW_READ_MS, state, feed, dash, el, fmtTime, fmtDateTime, fmtDur, statusOf,
  reg } from './util.js';
import { api } from './api.js';
import { renderConn, noteDown, noteUp } from './feed.js';

// ---------------------------------------------------------------- operations table

export function pageParams() {
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

export async function loadPage() {
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
export function current(item) {
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
export const SERVER_ORDER = { name: 'display_name', newest: 'created_at_ms', oldest: 'created_at_ms' };

export function sortedItems() {
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

export function elapsedOf(it) {
  if (!LIVE.has(it.status)) return it.elapsed_ms;
  return Date.now() - it.created_at_ms; // as the registry's elapsed_ms: since registration
}

export function statusBadge(status) {
  return el('span', { class: `badge s-${status}`, text: status });
}

export function rowFor(it) {
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

export function renderTable() {
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
export const headerLabel = (key) => document.querySelector(`th[data-sort="${key}"]`).textContent.replace(/[↓↑ ]+$/, '');

/** A completion from the feed: its row changes at the next flush (within 40 ms), not at
 * the next page read. The table is drawn again (not the row alone) so a sort by status
 * stays true. */
export function applyToTable(entry) {
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

export function redrawChanged() {
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

export function tickElapsed() {
  for (const tr of document.querySelectorAll('#ops-body tr')) {
    if (!LIVE.has(tr.dataset.status)) continue;
    const item = state.items.find((it) => it.id === tr.dataset.id);
    if (item) tr.querySelector('.elapsed').textContent = fmtDur(elapsedOf(item));
  }
}

export function resetPaging() {
  state.cursors = [null];
  state.page = 0;
  loadPage();
}

// ---------------------------------------------------------------- counts (stats)

export async function loadStats() {
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
