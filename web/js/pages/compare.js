// pages/compare.js - several runs side by side: their curves overlaid (a
// training metric per step: loss, lr, grad norm), their scores in one table
// with the best of each row marked (a headline score's KEY/DATA twin left
// out), and the spec fields in which they differ: a field counts only for
// the runs whose settings use it (rotation.train.* for learned rotations,
// weights.calib for GPTQ, ...), and shows n/a for the others.
// The runs come from ?runs=1,2,3 and/or ?sweep=ID (all of a sweep's runs);
// curves keep growing from the global event stream while runs learn.
import { get, qs, stream } from '../api.js';
import { h, replace, fmtNum, statusBadge, errorBox, throttle } from '../dom.js';
import { direction, isTrain, isTwin } from '../metrics.js';
import { StepChart, PALETTE } from '../chart.js';
import { navigate } from '../nav.js';

export const name = 'compare';
const MAX_RUNS = 24;
const CURVES = ['train/loss', 'train/lr', 'train/grad_norm'];

const parseIds = (s) => [...new Set((s || '').split(/[\s,]+/).map(Number).filter((n) => Number.isInteger(n) && n > 0))];

export async function render(main, { query }) {
  let ids = parseIds(query.get('runs'));
  const sweepId = Number(query.get('sweep')) || 0;
  const curve = CURVES.includes(query.get('curve')) ? query.get('curve') : 'train/loss';
  const notes = [];
  let sweep = null;
  if (sweepId) {
    try {
      sweep = await get(`/api/sweeps/${sweepId}`);
      ids = [...new Set([...ids, ...sweep.runs.map((r) => r.id)])];
    } catch (e) {
      notes.push(errorBox(e));
    }
  }
  if (ids.length > MAX_RUNS) {
    notes.push(h('p.muted', `Showing the first ${MAX_RUNS} of ${ids.length} runs.`));
    ids = ids.slice(0, MAX_RUNS);
  }
  const go = (next, extra = {}) => navigate(`/compare${qs({ runs: next.join(','), sweep: extra.sweep ?? (sweepId || ''), curve: extra.curve ?? (curve === 'train/loss' ? '' : curve) })}`, { replace: true });

  // the picker: run ids, a sweep, the curve
  const idsInput = h('input', { name: 'runs', placeholder: 'run ids: 12, 14', size: 16 });
  const sweepSel = h('select', { name: 'sweep' }, h('option', { value: '' }, 'a sweep…'));
  get('/api/sweeps?limit=100').then((r) => {
    for (const s of r.sweeps) sweepSel.append(h('option', { value: String(s.id), selected: s.id === sweepId }, `#${s.id} ${s.name}`));
  }).catch(() => {});
  const picker = h('form.filters', { on: { submit: (ev) => { ev.preventDefault(); go([...ids, ...parseIds(idsInput.value)], { sweep: sweepSel.value }); } } },
    h('label', 'add runs', idsInput), h('label', 'or', sweepSel),
    h('button.primary', { type: 'submit' }, 'Add'),
    h('label', 'curve', h('select', { name: 'curve', on: { change: (ev) => go(ids, { curve: ev.target.value === 'train/loss' ? '' : ev.target.value }) } },
      CURVES.map((c) => h('option', { value: c, selected: c === curve }, c)))),
    ids.length ? h('button', { type: 'button', on: { click: () => navigate('/compare', { replace: true }) } }, 'Clear') : null);

  const head = h('div.page-head', h('h1', 'Compare'), sweep ? h('span.muted', 'sweep ', h('a', { href: `/sweeps/${sweep.id}` }, `#${sweep.id} ${sweep.name}`)) : null);
  if (!ids.length) {
    replace(main, head, picker, notes, h('p.muted', 'Pick runs here, or tick them in the runs table and press “Compare selected”.'));
    return null;
  }

  const runs = await Promise.all(ids.map((id) => get(`/api/runs/${id}`).catch((e) => ({ id, error: e }))));
  const ok = runs.filter((r) => !r.error);
  const color = new Map(ok.map((r, i) => [r.id, PALETTE[i % PALETTE.length]]));
  const chips = h('div.chips', runs.map((r) => h('span.chip', { dataset: { runId: String(r.id) } },
    r.error ? null : h('span.swatch', { dataset: { color: color.get(r.id) } }),
    h('a', { href: `/runs/${r.id}` }, `#${r.id}`), ' ', r.error ? h('span.error-inline', r.error.message) : r.name, ' ',
    h('button.x', { type: 'button', title: 'remove', on: { click: () => go(ids.filter((x) => x !== r.id), { sweep: '' }) } }, '×'))));
  for (const sw of chips.querySelectorAll('.swatch')) sw.style.background = sw.dataset.color;

  const chartEl = h('div#compare-chart');
  const table = h('div#compare-metrics');
  const diff = h('div#compare-spec');
  const live = h('span.live.muted');
  head.append(live);
  replace(main, head, picker, notes, chips,
    h('section', h('h2', curve), chartEl),
    h('section', h('h2', 'Scores'), table),
    h('section', h('h2', 'Spec differences'), diff));

  const chart = new StepChart(chartEl, {
    series: ok.map((r) => ({ label: `#${r.id} ${r.name}`.slice(0, 48), color: color.get(r.id), scale: 'y', axisLabel: curve })),
    height: 320,
  });
  const index = new Map(ok.map((r, i) => [r.id, i]));

  function drawTable() {
    const keys = new Set();
    for (const r of ok) for (const k of Object.keys(r.metrics || {})) keys.add(k);
    for (const k of [...keys]) if (ok.every((r) => !r.metrics[k] || isTwin(k, r.metrics, r.spec))) keys.delete(k);
    const sorted = [...keys].sort((a, b) => (isTrain(a) - isTrain(b)) || (a.includes('/') - b.includes('/')) || a.localeCompare(b));
    const rows = sorted.map((k) => {
      const vals = ok.map((r) => (r.metrics[k] ? r.metrics[k].value : null));
      const finite = vals.filter((v) => Number.isFinite(v));
      const ranked = !['train/lr', 'train/grad_norm'].includes(k); // settings and diagnostics, not scores
      const best = ranked && finite.length > 1 ? (direction(k) > 0 ? Math.max(...finite) : Math.min(...finite)) : null;
      return h('tr', { dataset: { key: k } }, h('th', k), vals.map((v, i) => h('td.num', {
        class: v !== null && v === best ? 'num best' : 'num', dataset: { runId: String(ok[i].id) },
      }, v === null ? '—' : fmtNum(v))));
    });
    replace(table, h('table.compare', h('thead', h('tr', h('th', 'metric'), ok.map((r) => h('th', { dataset: { runId: String(r.id) } },
      h('a', { href: `/runs/${r.id}` }, `#${r.id}`), ' ', statusBadge(r.status))))),
    h('tbody', rows.length ? rows : h('tr', h('td.empty', { colspan: String(ok.length + 1) }, 'No metrics yet.')))));
  }

  function drawDiff() {
    const flat = ok.map((r) => flatten(r.spec || {}));
    const paths = new Set();
    for (const f of flat) for (const k of Object.keys(f)) paths.add(k);
    const uses = (p, i) => applies(p, ok[i].spec || {});
    const differing = [...paths].filter((p) =>
      new Set(flat.filter((f, i) => uses(p, i)).map((f) => JSON.stringify(f[p]))).size > 1).sort();
    if (ok.length < 2) replace(diff, h('p.muted', 'Add another run to see how their specs differ.'));
    else if (!differing.length) replace(diff, h('p.muted', 'The specs are identical.'));
    else {
      replace(diff, h('table.compare', h('thead', h('tr', h('th', 'field'), ok.map((r) => h('th', `#${r.id}`)))),
        h('tbody', differing.map((p) => h('tr', { dataset: { field: p } }, h('th', p),
          flat.map((f, i) => (uses(p, i) ? h('td', f[p] === undefined ? '—' : JSON.stringify(f[p]))
            : h('td.na', { title: 'not used by this run\'s settings' }, 'n/a'))))))));
    }
  }

  drawTable();
  drawDiff();

  // live first, history second: a point is a point whichever brings it
  const refreshSoon = throttle(async () => {
    for (const r of ok) {
      if (!r.stale) continue;
      r.stale = false;
      try { Object.assign(r, await get(`/api/runs/${r.id}`)); } catch { /* deleted: keep what we had */ }
    }
    drawTable();
  }, 1000);
  const close = stream('/api/events', {
    metric: (ev) => {
      const i = index.get(ev.run_id);
      if (i === undefined) return;
      if (ev.key === curve) chart.add(i, ev.step, ev.value);
      ok[i].metrics[ev.key] = { step: ev.step, value: ev.value };
      if (!isTrain(ev.key)) { ok[i].stale = true; refreshSoon(); }
    },
    status: (ev) => {
      const i = index.get(ev.run_id);
      if (i === undefined) return;
      ok[i].status = ev.status;
      ok[i].stale = true;
      refreshSoon();
    },
  }, (s) => { live.textContent = s === 'live' ? '● live' : s === 'connecting' ? '○ connecting' : '○ reconnecting'; live.dataset.state = s; });

  await Promise.all(ok.map(async (r, i) => {
    try {
      const m = await get(`/api/runs/${r.id}/metrics${qs({ key: curve })}`);
      for (const [step, v] of m.points) if (!chart.maps[i].has(step)) chart.add(i, step, v);
    } catch { /* the table says what is there */ }
  }));
  chart.el.dataset.series = String(ok.length);
  return () => { close(); chart.destroy(); };
}

// Whether a spec field (a flattened path) takes part in a run with this spec:
// learning settings only when the rotations are learned, GPTQ's only with
// GPTQ, a quantizer's details only when it quantizes (fewer than 16 bits).
export function applies(p, spec) {
  const rot = spec.rotation || {};
  const q = spec.quant || {};
  if (p.startsWith('rotation.train.') || p === 'rotation.init') return rot.mode === 'spinquant';
  if (p === 'rotation.online_had') return rot.mode !== 'none';
  if (p.startsWith('weights.') && p !== 'weights.method') return (spec.weights || {}).method === 'gptq';
  if (['quant.w_sym', 'quant.w_groupsize', 'quant.w_clip'].includes(p)) return q.w_bits < 16;
  if (p === 'quant.a_clip') return q.a_bits < 16;
  if (p === 'quant.kv_clip') return q.kv_bits < 16;
  return true;
}

// {"a": {"b": 1}, "c": [{"d": 2}]} -> {"a.b": 1, "c[0].d": 2}
function flatten(v, prefix = '', out = {}) {
  if (Array.isArray(v)) {
    if (!v.length) out[prefix] = [];
    v.forEach((x, i) => flatten(x, `${prefix}[${i}]`, out));
  } else if (v && typeof v === 'object') {
    const keys = Object.keys(v);
    if (!keys.length && prefix) out[prefix] = {};
    for (const k of keys) flatten(v[k], prefix ? `${prefix}.${k}` : k, out);
  } else {
    out[prefix] = v;
  }
  return out;
}
