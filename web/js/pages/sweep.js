// pages/sweep.js - one sweep: its grid and base spec, and its runs as a
// table ordered best first by a chosen metric (the API orders: ?order=ppl,
// or -top1 for higher-is-better scores); a link compares them all.
import { get, qs, stream } from '../api.js';
import { h, replace, showError, throttle } from '../dom.js';
import { allKeys, direction } from '../metrics.js';
import { runsTable, patchRow } from '../runstable.js';
import { setQuery } from '../nav.js';
import { gridSummary } from './sweeps.js';

export const name = 'sweep';

export async function render(main, { params, query }) {
  const id = Number(params[0]);
  const sweep = await get(`/api/sweeps/${id}`);
  const keys = allKeys(sweep.runs);
  const best = (k) => (direction(k) > 0 ? `-${k}` : k);
  let order = query.get('order') || (keys.includes('ppl') ? 'ppl' : keys.length ? best(keys[0]) : '');

  const err = h('div.errors', { hidden: true });
  const box = h('div.table-box');
  const live = h('span.live.muted');
  const metricSel = h('select', { name: 'metric', on: { change: (ev) => { order = ev.target.value ? best(ev.target.value) : ''; load(); } } });
  replace(main,
    h('div.page-head', h('h1', `Sweep #${id} `, h('span', sweep.name)), live, h('span.spacer'),
      h('a.button.primary', { href: `/compare?sweep=${id}` }, 'Compare all runs')),
    h('p', gridSummary(sweep.grid), ' · owner ', sweep.owner),
    h('details', h('summary', 'Base spec'), h('pre', JSON.stringify(sweep.base, null, 2))),
    h('div.filters', h('label', 'best first by ', metricSel)), err, box);

  async function load() {
    let runs = sweep.runs;
    try {
      const s = await get(`/api/sweeps/${id}${qs({ order })}`);
      runs = s.runs;
      err.hidden = true;
    } catch (e) {
      showError(err, e);
    }
    const all = allKeys(runs);
    const cur = order.replace(/^-/, '');
    replace(metricSel, h('option', { value: '' }, '(newest first)'),
      [...new Set([...all, ...(cur ? [cur] : [])])].map((k) => h('option', { value: k, selected: k === cur }, k)));
    setQuery({ order });
    replace(box, runsTable(runs, { order, hide: ['sweep'], onSort: (o) => { order = o; load(); } }));
  }

  const later = throttle(load, 1000);
  const close = stream('/api/events', {
    status: (ev) => {
      const t = box.querySelector('table');
      if (t && patchRow(t, ev.run_id, ev) && ['done', 'failed', 'canceled'].includes(ev.status)) later();
    },
    metric: (ev) => { if (!ev.key.startsWith('train/') && box.querySelector(`tr[data-run-id="${Number(ev.run_id)}"]`)) later(); },
    deleted: later,
  }, (s) => { live.textContent = s === 'live' ? '● live' : '○ reconnecting'; live.dataset.state = s; });
  await load();
  return close;
}
