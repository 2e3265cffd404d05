// pages/workers.js - the workers the daemon knows (local ones it supervises,
// remote ones connected with a token), what each runs, and the service's
// health; kept current from the worker events of the global stream.
import { get, stream } from '../api.js';
import { h, replace, fmtTime, showError, throttle } from '../dom.js';

export const name = 'workers';

export async function render(main) {
  const err = h('div.errors', { hidden: true });
  const health = h('div#health.muted');
  const box = h('div.table-box');
  const live = h('span.live.muted');
  replace(main, h('div.page-head', h('h1', 'Workers'), live), health, err, box);

  async function load() {
    try {
      const [w, hl] = await Promise.all([get('/api/workers'), get('/api/health')]);
      err.hidden = true;
      const runs = Object.entries(hl.runs || {}).map(([k, v]) => `${v} ${k}`).join(', ') || 'no runs';
      health.textContent = `spinqd ${hl.version} · ${hl.workers.connected} connected, ${hl.workers.busy} busy · ${runs}` +
        `${hl.draining ? ' · draining' : ''} · auth ${hl.auth ? 'on' : 'off'}`;
      replace(box, h('table.workers',
        h('thead', h('tr', ['id', 'name', 'kind', 'state', 'run', 'pid', 'address', 'jobs done', 'restarts', 'connected', 'last seen'].map((c) => h('th', c)))),
        h('tbody', w.workers.length ? w.workers.map((x) => h('tr', { dataset: { workerId: String(x.id) } },
          h('td', `#${x.id}`), h('td', x.name), h('td', x.kind),
          h('td', h(`span.badge.worker-${/^[a-z]+$/.test(x.state) ? x.state : 'unknown'}`, x.state)),
          h('td', x.run_id ? h('a', { href: `/runs/${x.run_id}` }, `#${x.run_id}`) : '—'),
          h('td.num', x.pid ?? '—'), h('td', x.addr ?? '—'), h('td.num', x.jobs_done), h('td.num', x.restarts),
          h('td', fmtTime(x.connected_at)), h('td', fmtTime(x.last_seen))))
          : h('tr', h('td.empty', { colspan: '11' }, 'No workers connected.')))));
    } catch (e) {
      showError(err, e);
    }
  }

  const later = throttle(load, 500);
  const close = stream('/api/events', { worker: later, status: later },
    (s) => { live.textContent = s === 'live' ? '● live' : '○ reconnecting'; live.dataset.state = s; });
  await load();
  return close;
}
