// adsync console: draws every view from its /api/ JSON and refreshes it
// every few seconds. Every value goes into the page as text (textContent,
// attributes set one by one): nothing from Redis or the platform is ever
// parsed as HTML. Actions are POSTs with the page's CSRF token.
'use strict';

const REFRESH_MS = 3000;
const PAGE = 50;
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const state = { clientsQuery: '', clientsOffset: 0, filter: '', selected: new Set(), timer: null };

// ---- small DOM helpers --------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'onclick' || k === 'oninput' || k === 'onchange') e[k] = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function age(ms) {
  if (ms === null || ms === undefined || ms < 0) return '-';
  const s = Math.round(ms / 1000);
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm';
  if (s < 86400) return Math.floor(s / 3600) + 'h';
  return Math.floor(s / 86400) + 'd';
}

function table(headers, rows) {
  return el('table', {}, el('thead', {}, el('tr', {}, ...headers.map(h => el('th', {}, h)))),
            el('tbody', {}, ...rows));
}

function num(n) { return el('td', { class: 'num' }, n === null || n === undefined ? '-' : n); }

function showError(text) {
  const e = document.getElementById('error');
  e.textContent = text;
  e.hidden = !text;
}

async function api(path) {
  const r = await fetch('/api/' + path, { credentials: 'same-origin' });
  if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
  return r.json();
}

async function act(path, body) {
  const r = await fetch('/api/' + path, {
    method: 'POST', credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
    body: JSON.stringify(body || {}),
  });
  if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
  return r.json();
}

// A confirmation in the page (not window.confirm): resolves true or false.
function confirmAction(text) {
  const box = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  box.hidden = false;
  return new Promise(resolve => {
    const done = ok => { box.hidden = true; resolve(ok); };
    document.getElementById('confirm-yes').onclick = () => done(true);
    document.getElementById('confirm-no').onclick = () => done(false);
  });
}

async function guarded(question, path, body) {
  if (question && !(await confirmAction(question))) return;
  try {
    await act(path, body);
    state.selected.clear();
    await render();
  } catch (e) { showError(e.message); }
}

// ---- views -------------------------------------------------------------------------

function card(label, n, id) {
  return el('div', { class: 'card', id: id }, el('div', { class: 'n' }, n), el('div', { class: 'l' }, label));
}

function chart(minutes) {
  const ns = 'http://www.w3.org/2000/svg', W = 900, H = 160, pad = 24;
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('class', 'chart');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'campaigns per minute, last hour');
  const series = [['synced', '#1a7f37'], ['retried', '#9a6700'], ['dead', '#cf222e']];
  const max = Math.max(1, ...minutes.map(m => Math.max(m.synced, m.retried, m.dead)));
  const x = i => pad + i * (W - 2 * pad) / Math.max(1, minutes.length - 1);
  const y = v => H - pad - v * (H - 2 * pad) / max;
  for (const [name, color] of series) {
    const p = document.createElementNS(ns, 'polyline');
    p.setAttribute('points', minutes.map((m, i) => `${x(i)},${y(m[name])}`).join(' '));
    p.setAttribute('fill', 'none');
    p.setAttribute('stroke', color);
    p.setAttribute('stroke-width', '2');
    p.setAttribute('data-series', name);
    svg.append(p);
  }
  const label = document.createElementNS(ns, 'text');
  label.setAttribute('x', pad);
  label.setAttribute('y', 14);
  label.setAttribute('font-size', '11');
  label.textContent = 'max ' + max + '/min';
  svg.append(label);
  const legend = el('div', { class: 'legend' }, ...series.map(([n, c]) => {
    const sw = el('span', { class: 'sw' });
    sw.style.background = c;
    return el('span', {}, sw, n);
  }));
  return el('div', {}, svg, legend);
}

async function overview() {
  const [s, activity] = await Promise.all([api('status'), api('activity')]);
  const workers = s.workers.map(w => {
    const hb = w.heartbeat || {};
    return el('tr', {}, el('td', {}, w.id), el('td', {}, w.alive ? 'alive' : 'missing heartbeat'),
              el('td', {}, age(w.heartbeat_age_ms)), num(hb.inflight), num(w.processing),
              el('td', {}, hb.host || '-'), num(hb.pid));
  });
  return [
    el('h2', {}, 'Queues'),
    el('div', { class: 'cards' }, card('jobs', s.jobs, 'q-jobs'), card('retry due', s.retry_due, 'q-retry-due'),
       card('retry later', s.retry - s.retry_due, 'q-retry-later'), card('dead', s.dead, 'q-dead'),
       card('outbox', s.outbox, 'q-outbox'), card('workers alive', s.workers_alive, 'q-workers'),
       card('campaigns synced (last runs)', s.clients.reduce((t, c) => t + (c.last_run ? c.last_run.synced : 0), 0),
            'q-synced')),
    el('h2', {}, 'Campaigns per minute, last hour'), chart(activity.minutes),
    el('h2', {}, 'Workers'),
    table(['worker', 'state', 'heartbeat', 'in flight', 'jobs held', 'host', 'pid'], workers),
  ];
}

function runRow(c) {
  const r = c.last_run;
  if (!r) return el('tr', {}, el('td', {}, c.id), el('td', { colspan: 7, class: 'muted' }, 'never synced'),
                    el('td', {}, el('button', { onclick: () => guarded(null, 'sync', { client: c.id }) }, 'sync now')));
  const bar = el('div', { class: 'bar' }, el('span', {}));
  bar.firstChild.style.width = (r.listed ? Math.round(100 * (r.synced + r.dead) / r.listed) : 0) + '%';
  return el('tr', {},
    el('td', {}, el('a', { href: '#/run/' + encodeURIComponent(r.run) }, c.id)),
    el('td', { class: 'state-' + r.state }, r.state), el('td', {}, bar), num(r.synced), num(r.retrying), num(r.dead),
    el('td', {}, age(r.age_ms)), el('td', { class: 'reason' }, r.last_error || ''),
    el('td', {}, el('button', { onclick: () => guarded(null, 'sync', { client: c.id }) }, 'sync now')));
}

async function clients() {
  const q = encodeURIComponent(state.clientsQuery);
  const d = await api(`clients?q=${q}&offset=${state.clientsOffset}&limit=${PAGE}`);
  const search = el('input', { type: 'search', placeholder: 'search client ids', id: 'client-search',
                               value: state.clientsQuery });
  search.oninput = () => { state.clientsQuery = search.value; state.clientsOffset = 0; render(); };
  const last = Math.min(d.total, d.offset + d.clients.length);
  const pager = el('div', { class: 'toolbar' }, search,
    el('button', { onclick: () => { state.clientsOffset = Math.max(0, d.offset - PAGE); render(); } }, '‹ prev'),
    el('span', { id: 'client-range' }, `${d.total ? d.offset + 1 : 0}–${last} of ${d.total}`),
    el('button', { onclick: () => { if (last < d.total) { state.clientsOffset += PAGE; render(); } } }, 'next ›'));
  return [el('h2', {}, 'Clients'), pager,
          table(['client', 'state', 'progress', 'synced', 'retrying', 'dead', 'age', 'last error', ''],
                d.clients.map(runRow))];
}

async function run(id) {
  const d = await api('run?id=' + encodeURIComponent(id));
  if (!d) return [el('p', {}, 'no such run')];
  const f = d.fields;
  const order = { dead: 0, retrying: 1, listed: 2, synced: 3 };
  const rows = d.campaigns.sort((a, b) => (order[a.state] ?? 9) - (order[b.state] ?? 9) || a.id.localeCompare(b.id))
    .map(c => el('tr', {}, el('td', {}, c.id), el('td', { class: 'state-' + c.state }, c.state),
                 num(c.error ? c.error.attempt : null), el('td', { class: 'reason' }, c.error ? c.error.last_error : '')));
  return [el('h2', {}, 'Run ' + d.run),
          el('p', {}, `client ${f.client || '-'} · ${f.state || '-'} · listed ${f.listed || 0} · synced ${f.synced || 0}` +
                      ` · retrying ${f.retrying || 0} · dead ${f.dead || 0}`),
          f.last_error ? el('p', { class: 'reason' }, f.last_error) : null,
          table(['campaign', 'state', 'attempts', 'last error'], rows)];
}

function matches(item) {
  const q = state.filter.toLowerCase();
  return !q || [item.client, item.last_error, item.campaign, item.id].some(v => (v || '').toLowerCase().includes(q));
}

function selectBox(id) {
  const box = el('input', { type: 'checkbox', 'aria-label': 'select ' + id });
  box.checked = state.selected.has(id);
  box.onchange = () => { if (box.checked) state.selected.add(id); else state.selected.delete(id); };
  return box;
}

function filterBox() {
  const f = el('input', { type: 'search', placeholder: 'filter by client or reason', id: 'filter', value: state.filter });
  f.oninput = () => { state.filter = f.value; render(); };
  return f;
}

async function retryQueue() {
  const d = await api('retry');
  const items = d.retry.filter(matches);
  const rows = items.map(r => el('tr', {}, el('td', {}, selectBox(r.id)), el('td', {}, r.client), el('td', {}, r.campaign || '-'),
    num(r.attempt), el('td', {}, age(r.due_at - Date.now())), el('td', { class: 'reason' }, r.last_error),
    el('td', {}, el('button', { onclick: () => guarded(null, 'retry/now', { ids: [r.id] }) }, 'retry now'))));
  return [el('h2', {}, `Retry queue (${d.retry.length})`),
          el('div', { class: 'toolbar' }, filterBox(),
             el('button', { onclick: () => guarded(`Make ${state.selected.size} selected entries due now?`, 'retry/now',
                                                   { ids: [...state.selected] }) }, 'retry selected'),
             el('button', { onclick: () => guarded('Make every retry due now?', 'retry/now', { all: true }) }, 'retry all')),
          table(['', 'client', 'campaign', 'attempts', 'due in', 'last error', ''], rows)];
}

async function deadLetters() {
  const d = await api('dead');
  const items = d.dead.filter(x => !x.unparseable && matches(x));
  const rows = items.map(x => el('tr', { 'data-job': x.id }, el('td', {}, selectBox(x.id)), el('td', {}, x.client),
    el('td', {}, x.type), el('td', {}, x.campaign || '-'), num(x.attempt), el('td', { class: 'reason' }, x.last_error),
    el('td', {}, el('button', { class: 'retry-one', onclick: () => guarded(`Retry job ${x.id}?`, 'dead/retry', { ids: [x.id] }) },
                    'retry'))));
  return [el('h2', {}, `Dead letters (${d.count})`),
          el('div', { class: 'toolbar' }, filterBox(),
             el('button', { onclick: () => guarded(`Retry ${state.selected.size} selected dead letters?`, 'dead/retry',
                                                   { ids: [...state.selected] }) }, 'retry selected'),
             el('button', { onclick: () => guarded(`Retry all ${d.count} dead letters?`, 'dead/retry', { all: true }) },
                'retry all'),
             el('button', { class: 'danger', id: 'purge',
                            onclick: () => guarded(`Delete all ${d.count} dead letters? There is no undo.`, 'dead/purge') },
                'purge')),
          table(['', 'client', 'type', 'campaign', 'attempts', 'reason', ''], rows)];
}

// ---- routing and refresh ----------------------------------------------------------------

const views = { overview, clients, retry: retryQueue, dead: deadLetters };

async function render() {
  const [, name, arg] = (location.hash || '#/overview').split('/');
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.view === name);
  if (!document.getElementById('confirm').hidden) return;   // never redraw under a question
  const active = document.activeElement && document.activeElement.id;
  try {
    const parts = name === 'run' ? await run(decodeURIComponent(arg || '')) : await (views[name] || overview)();
    document.getElementById('view').replaceChildren(...parts.filter(Boolean));
    document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    showError('');
    if (active && document.getElementById(active)) {   // keep typing in the search box
      const e = document.getElementById(active);
      e.focus();
      if (e.setSelectionRange) e.setSelectionRange(e.value.length, e.value.length);
    }
  } catch (e) { showError(e.message); }
}

window.addEventListener('hashchange', () => { state.selected.clear(); state.filter = ''; render(); });
render();
state.timer = setInterval(render, REFRESH_MS);
