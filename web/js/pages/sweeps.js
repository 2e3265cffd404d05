// pages/sweeps.js - every sweep: its grid, owner, and its runs by status;
// reloaded when a sweep is created or one of the runs changes state.
import { get, stream } from '../api.js';
import { h, replace, fmtTime, showError, throttle } from '../dom.js';

export const name = 'sweeps';
const STATUSES = ['queued', 'running', 'done', 'failed', 'canceled'];

export async function render(main) {
  const err = h('div.errors', { hidden: true });
  const box = h('div.table-box');
  const live = h('span.live.muted');
  replace(main, h('div.page-head', h('h1', 'Sweeps'), live), err, box);

  async function load() {
    let sweeps = [];
    try {
      sweeps = (await get('/api/sweeps?limit=200')).sweeps;
      err.hidden = true;
    } catch (e) {
      showError(err, e);
    }
    replace(box, h('table.sweeps',
      h('thead', h('tr', h('th', 'id'), h('th', 'name'), h('th', 'grid'), h('th', 'runs'), h('th', 'owner'), h('th', 'created'))),
      h('tbody', sweeps.length ? sweeps.map((s) => h('tr', { dataset: { sweepId: String(s.id) } },
        h('td', h('a', { href: `/sweeps/${s.id}` }, `#${s.id}`)),
        h('td', h('a', { href: `/sweeps/${s.id}` }, s.name)),
        h('td', gridSummary(s.grid)),
        h('td', STATUSES.filter((st) => s.runs_by_status[st]).map((st) => h(`span.badge.status-${st}`, `${s.runs_by_status[st]} ${st}`))),
        h('td', s.owner), h('td', fmtTime(s.created_at))))
        : h('tr', h('td.empty', { colspan: '6' }, 'No sweeps yet. POST /api/sweeps with a base spec and a grid, or use “New run”.')))));
  }

  const later = throttle(load, 1000);
  const close = stream('/api/events', {
    sweep: later,
    status: (ev) => { if (['done', 'failed', 'canceled', 'running'].includes(ev.status)) later(); },
    deleted: later,
  }, (s) => { live.textContent = s === 'live' ? '● live' : '○ reconnecting'; live.dataset.state = s; });
  await load();
  return close;
}

// {"rotation.train.lr": [0.5, 1.5], "seed": [0, 1]} -> "rotation.train.lr × 2, seed × 2"
export function gridSummary(grid) {
  if (!grid || typeof grid !== 'object') return '';
  return Object.entries(grid).map(([k, v]) => h('span.grid-axis', { title: JSON.stringify(v) },
    `${k} ∈ {${(Array.isArray(v) ? v : [v]).map((x) => JSON.stringify(x)).join(', ')}}`));
}
