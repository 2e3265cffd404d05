// runstable.js - a table of runs (the runs page, a sweep's page): fixed
// columns, score columns from the runs' metrics, headers that set the order
// (any column or metric: the API sorts), checkboxes to pick runs to compare,
// and in-place updates of a row's status from the event stream.
import { h, replace, fmtNum, fmtTime, fmtDuration, statusBadge } from './dom.js';
import { scoreColumns, metricValue } from './metrics.js';

const BASE = [
  { key: 'id', label: 'id', order: 'id', cell: (r) => h('a', { href: `/runs/${r.id}` }, `#${r.id}`) },
  { key: 'name', label: 'name', order: 'name', cell: (r) => h('a', { href: `/runs/${r.id}` }, r.name || '') },
  { key: 'model', label: 'model', order: 'model', cell: (r) => r.model },
  { key: 'status', label: 'status', order: 'status', cell: (r) => statusCell(r) },
  { key: 'stage', label: 'stage', cell: (r) => r.stage || '' },
  { key: 'tags', label: 'tags', cell: (r) => (r.tags || []).map((t) => h('span.tag', t)) },
  { key: 'sweep', label: 'sweep', cell: (r) => (r.sweep_id ? h('a', { href: `/sweeps/${r.sweep_id}` }, `#${r.sweep_id}`) : '') },
  { key: 'owner', label: 'owner', order: 'owner', cell: (r) => r.owner },
  { key: 'created_at', label: 'created', order: 'created_at', cell: (r) => fmtTime(r.created_at) },
  { key: 'duration', label: 'took', order: 'finished_at', cell: (r) => duration(r) },
];

// the status, and under the slurm executor the job's state while it is not over
function statusCell(r) {
  const b = statusBadge(r.status);
  if (r.reason && r.status !== 'done') b.title = r.reason;
  if (!r.slurm_state || !['queued', 'running'].includes(r.status)) return b;
  const s = h(`span.badge.slurm-${/^[A-Z_]+$/.test(r.slurm_state) ? r.slurm_state.toLowerCase() : 'unknown'}`,
    { title: `Slurm job ${r.slurm_job_id}${r.slurm_nodes ? ` on ${r.slurm_nodes}` : ''}` }, r.slurm_state);
  return [b, s];
}

function duration(r) {
  if (!r.started_at) return '';
  const end = r.finished_at || Date.now() / 1000;
  return fmtDuration(end - r.started_at);
}

// opts: {order: 'ppl' | '-ppl' | ..., onSort(order), selected: Set of ids (checkboxes when
// given), onSelect(), hide: [column keys], scoreKeys: [metric keys] (default: from the runs)}
export function runsTable(runs, opts = {}) {
  const hide = new Set(opts.hide || []);
  const cols = BASE.filter((c) => !hide.has(c.key));
  const scores = opts.scoreKeys || scoreColumns(runs);
  for (const k of scores) {
    cols.push({ key: k, label: k, order: k, num: true, metric: true,
      cell: (r) => { const v = metricValue(r, k); return v === null ? '' : fmtNum(v); } });
  }
  const order = opts.order || '';
  const desc = order.startsWith('-');
  const orderKey = desc ? order.slice(1) : order;
  const head = h('tr', opts.selected ? h('th.pick', '') : null, cols.map((c) => {
    const th = h('th', { dataset: { col: c.key }, class: c.num ? 'num' : '' });
    if (c.order && opts.onSort) {
      const active = orderKey === c.order;
      const arrow = active ? (desc ? ' ▼' : ' ▲') : '';
      th.append(h('button.sort', {
        type: 'button', title: `order by ${c.order}${active && !desc ? ' (descending)' : ''}`,
        on: { click: () => opts.onSort(active && !desc ? `-${c.order}` : c.order) },
      }, c.label, arrow));
      if (active) th.setAttribute('aria-sort', desc ? 'descending' : 'ascending');
    } else {
      th.append(c.label);
    }
    return th;
  }));
  const body = h('tbody', runs.map((r) => h('tr', { dataset: { runId: String(r.id) } },
    opts.selected ? h('td.pick', h('input', {
      type: 'checkbox', 'aria-label': `select run ${r.id}`, checked: opts.selected.has(r.id),
      on: { change: (ev) => { if (ev.target.checked) opts.selected.add(r.id); else opts.selected.delete(r.id); if (opts.onSelect) opts.onSelect(); } },
    })) : null,
    cols.map((c) => h('td', { dataset: { col: c.key }, class: c.num ? 'num' : '' }, c.cell(r))))));
  if (!runs.length) {
    body.append(h('tr', h('td.empty', { colspan: String(cols.length + (opts.selected ? 1 : 0)) }, 'No runs.')));
  }
  return h('table.runs', h('thead', head), body);
}

// Updates the status and stage cells of a run's row, when the table shows it.
export function patchRow(table, runId, ev) {
  const row = table.querySelector(`tr[data-run-id="${Number(runId)}"]`);
  if (!row) return false;
  const st = row.querySelector('td[data-col="status"]');
  if (st && ev.status) replace(st, statusCell({ status: ev.status, reason: ev.reason }));
  const sg = row.querySelector('td[data-col="stage"]');
  if (sg && 'status' in ev) sg.textContent = ev.stage || (ev.status === 'running' ? sg.textContent : '');
  row.classList.remove('flash');
  void row.offsetWidth; // restart the animation
  row.classList.add('flash');
  return true;
}
