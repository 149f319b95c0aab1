/* opsreg dashboard: one operation's panel (facts, timeline, cancel). */
import { $, LIVE, state, el, fmtDateTime, fmtDur, plural, statusOf, reg, writeHash } from './util.js';
import { api } from './api.js';
import { loadPage, elapsedOf, statusBadge, loadStats } from './table.js';

// ---------------------------------------------------------------- one operation

export function openDetail(id) {
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

export function closeDetail() {
  state.selected = null;
  writeHash();
  $('detail').hidden = true;
  for (const tr of document.querySelectorAll('#ops-body tr.selected')) tr.classList.remove('selected');
}

export let detailSeq = 0;
export async function loadDetail() {
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

export function renderMissing(id) {
  $('d-name').textContent = 'not found';
  $('d-id').textContent = id;
  $('d-facts').replaceChildren();
  $('d-timeline').replaceChildren(el('li', { text: 'The registry does not hold this operation (unknown id, or forgotten by retention).' }));
  $('d-cancel').disabled = true;
}

/** `progress_log`'s answer as [{at_ms, message, percent}] (tolerant of its exact shape). */
export function progressEntries(log) {
  if (!log || log.unavailable) return null;
  const list = Array.isArray(log) ? log : (log.entries || log.items || log.updates || []);
  return list.map((x) => {
    if (Array.isArray(x)) return { at_ms: x[0], message: (x[1] || {}).message, percent: (x[1] || {}).percent };
    const u = x.update || x;
    return { at_ms: x.at_ms ?? null, message: u.message, percent: u.percent, number: x.number };
  });
}

export function renderDetail(snap, log) {
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

export function progressText(p) {
  const pct = typeof p.percent === 'number' ? `${Math.round(p.percent)}% ` : '';
  return `progress: ${pct}${p.message || ''}`;
}

export async function cancelSelected() {
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
