// pages/runs.js - the runs table: filters (status, model, tag, sweep, text),
// order by any column or metric, pages, runs picked for the compare view;
// kept current from the global event stream (a row's status changes in
// place; new runs, final states and new scores reload the page of rows).
import { get, qs, stream } from '../api.js';
import { h, replace, showError, throttle } from '../dom.js';
import { allKeys } from '../metrics.js';
import { runsTable, patchRow } from '../runstable.js';
import { navigate, setQuery } from '../nav.js';

export const name = 'runs';
const STATUSES = ['queued', 'running', 'done', 'failed', 'canceled'];
const SIZES = [25, 50, 100];

export async function render(main, { query }) {
  const f = {
    status: query.get('status') || '',
    model: query.get('model') || '',
    tag: query.get('tag') || '',
    sweep: query.get('sweep') || '',
    q: query.get('q') || '',
    order: query.get('order') || '',
    limit: Number(query.get('limit')) || 25,
    offset: Number(query.get('offset')) || 0,
  };
  const selected = new Set();
  let runs = [];
  let total = 0;

  const input = (key, label, attrs = {}) => h('label', label, h('input', {
    name: key, value: f[key], ...attrs,
    on: { change: (ev) => { f[key] = ev.target.value.trim(); f.offset = 0; reload(); } },
  }));
  const statusSel = h('select', { name: 'status', on: { change: (ev) => { f.status = ev.target.value; f.offset = 0; reload(); } } },
    h('option', { value: '' }, 'any'), STATUSES.map((s) => h('option', { value: s, selected: f.status === s }, s)));
  const orderSel = h('select', { name: 'order', on: { change: (ev) => { f.order = ev.target.value; f.offset = 0; reload(); } } });
  const filters = h('form.filters', { on: { submit: (ev) => { ev.preventDefault(); } } },
    h('label', 'status', statusSel),
    input('model', 'model', { placeholder: 'stories260K', size: 12 }),
    input('tag', 'tag', { size: 10 }),
    input('sweep', 'sweep', { type: 'number', min: 1, size: 5 }),
    input('q', 'search', { type: 'search', placeholder: 'name or model', size: 16 }),
    h('label', 'order', orderSel),
    h('button', { type: 'button', on: { click: () => { Object.assign(f, { status: '', model: '', tag: '', sweep: '', q: '', order: '', offset: 0 }); navigate('/', { replace: true }); } } }, 'Reset'));
  const compareBtn = h('button.primary', { type: 'button', disabled: true,
    on: { click: () => navigate(`/compare?runs=${[...selected].join(',')}`) } }, 'Compare selected');
  const live = h('span.live.muted', { title: 'live updates from /api/events' }, '');
  const err = h('div.errors', { hidden: true });
  const tableBox = h('div.table-box');
  const pager = h('div.pager');
  replace(main, h('div.page-head', h('h1', 'Runs'), live, h('span.spacer'), compareBtn, h('a.button', { href: '/new' }, 'New run')),
    filters, err, tableBox, pager);

  const syncSelection = () => {
    compareBtn.disabled = selected.size < 1;
    compareBtn.textContent = selected.size ? `Compare selected (${selected.size})` : 'Compare selected';
  };

  function fillOrder(keys) {
    const opts = [['', 'newest first'], ['id', 'id (oldest first)'], ['name', 'name'], ['model', 'model'],
      ['status', 'status'], ['owner', 'owner'], ['created_at', 'created'], ['finished_at', 'finished']];
    for (const k of keys) { opts.push([k, `${k} ↑`]); opts.push([`-${k}`, `${k} ↓`]); }
    if (f.order && !opts.some(([v]) => v === f.order)) opts.push([f.order, f.order]);
    replace(orderSel, opts.map(([v, label]) => h('option', { value: v, selected: f.order === v }, label)));
  }

  let seq = 0;
  async function load() {
    const my = ++seq;
    const params = { status: f.status, model: f.model, tag: f.tag, sweep: f.sweep, q: f.q, order: f.order,
      limit: f.limit, offset: f.offset };
    try {
      const res = await get(`/api/runs${qs(params)}`);
      if (my !== seq) return;
      runs = res.runs;
      total = res.total;
      err.hidden = true;
    } catch (e) {
      if (my !== seq) return;
      showError(err, e);
      runs = [];
      total = 0;
    }
    fillOrder(allKeys(runs));
    replace(tableBox, runsTable(runs, {
      order: f.order, selected, onSelect: syncSelection,
      onSort: (o) => { f.order = o; f.offset = 0; reload(); },
    }));
    tableBox.dataset.total = String(total);
    drawPager();
    syncSelection();
  }

  function drawPager() {
    const from = total ? f.offset + 1 : 0;
    const to = Math.min(total, f.offset + runs.length);
    replace(pager,
      h('span.count', `${from}–${to} of ${total}`),
      h('button', { type: 'button', disabled: f.offset === 0,
        on: { click: () => { f.offset = Math.max(0, f.offset - f.limit); reload(); } } }, '‹ Prev'),
      h('button', { type: 'button', disabled: f.offset + f.limit >= total,
        on: { click: () => { f.offset += f.limit; reload(); } } }, 'Next ›'),
      h('label', 'per page ', h('select', { on: { change: (ev) => { f.limit = Number(ev.target.value); f.offset = 0; reload(); } } },
        [...new Set([...SIZES, f.limit])].sort((a, b) => a - b)
          .map((n) => h('option', { value: String(n), selected: f.limit === n }, String(n))))));
  }

  function reload() {
    setQuery({ ...f, limit: f.limit === 25 ? '' : f.limit, offset: f.offset || '' });
    return load();
  }

  const later = throttle(load, 1000);
  const close = stream('/api/events', {
    run: () => later(),
    status: (ev) => {
      const table = tableBox.querySelector('table');
      if (table) patchRow(table, ev.run_id, ev);
      if (['done', 'failed', 'canceled', 'queued'].includes(ev.status) || f.status || f.order) later();
    },
    metric: (ev) => { if (!ev.key.startsWith('train/') && runs.some((r) => r.id === ev.run_id)) later(); },
    sweep: () => later(),
  }, (s) => { live.textContent = s === 'live' ? '● live' : s === 'connecting' ? '○ connecting' : '○ reconnecting'; live.dataset.state = s; });

  await load();
  return close;
}
