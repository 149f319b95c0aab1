/* opsreg dashboard: plain ES modules, no build step, nothing fetched but the gateway's JSON
 * API (docs/http.md). Text that comes from the registry is only ever set with textContent.
 * This module wires the page; util.js, api.js, feed.js, table.js, panel.js and charts.js
 * hold the rest.
 *
 * What it keeps: one page of operations (server-side paging by cursor), the last few hundred
 * completion rows, ten minutes of per-second chart buckets. Nothing grows with the registry.
 */
import { $, POLL_MS, STATS_MS, HISTORY, state, feed, chart, resumed, el, readHash, debounce } from './util.js';
import { api } from './api.js';
import { renderConn, openFeed, closeFeed } from './feed.js';
import { loadPage, renderTable, tickElapsed, resetPaging, loadStats } from './table.js';
import { openDetail, closeDetail, loadDetail, cancelSelected } from './panel.js';
import { drawCharts, drawLegend } from './charts.js';

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
