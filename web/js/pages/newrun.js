// pages/newrun.js - submit a run (or a sweep) from a JSON spec. The form
// starts from the daemon's own defaults (GET /api/defaults: the parser's, so
// it cannot drift); a 422 names the offending field, which is shown and
// selected in the text. With a grid the spec becomes a sweep's base.
import { api, get } from '../api.js';
import { h, replace, errorBox } from '../dom.js';
import { navigate } from '../nav.js';

export const name = 'new';

export async function render(main) {
  let defaults = { model: '' };
  const notes = h('div.errors');
  try {
    defaults = (await get('/api/defaults')).spec;
  } catch (e) {
    notes.append(errorBox(e));
  }
  const spec = h('textarea#spec-input.code', { rows: '28', spellcheck: 'false', 'aria-label': 'job spec (JSON)' });
  spec.value = JSON.stringify(defaults, null, 2);
  const grid = h('textarea#grid-input.code', { rows: '4', spellcheck: 'false', 'aria-label': 'sweep grid (JSON)',
    placeholder: '{"rotation.train.lr": [0.5, 1.5], "seed": [0, 1]}' });
  const sweepName = h('input#sweep-name', { placeholder: 'sweep name (optional)', size: 30 });
  const result = h('div#submit-result', { hidden: true });
  const submit = h('button#submit.primary', { type: 'submit' }, 'Submit');

  replace(main,
    h('div.page-head', h('h1', 'New run')),
    notes,
    h('form#new-run', { on: { submit: (ev) => { ev.preventDefault(); send(); } } },
      h('p.muted', 'The job spec (design notes, section 5): every field but ', h('code', 'model'),
        ' has a default, shown here. Models and datasets are names under the daemon\'s directories.'),
      spec,
      h('details', h('summary', 'Sweep: a grid over spec paths (one run per point)'),
        h('p.muted', 'Leave empty for a single run.'), grid, h('div', sweepName)),
      h('div.actions', submit, result)));

  async function send() {
    result.hidden = true;
    let body;
    try {
      body = JSON.parse(spec.value);
    } catch (e) {
      return fail({ status: 0, code: 'invalid_json', message: `the spec is not JSON: ${e.message}` }, spec);
    }
    let g = null;
    if (grid.value.trim()) {
      try {
        g = JSON.parse(grid.value);
      } catch (e) {
        return fail({ status: 0, code: 'invalid_json', message: `the grid is not JSON: ${e.message}` }, grid);
      }
    }
    submit.disabled = true;
    try {
      if (g) {
        const req = { base: body, grid: g };
        if (sweepName.value.trim()) req.name = sweepName.value.trim();
        const res = await api('POST', '/api/sweeps', req);
        navigate(`/sweeps/${res.sweep.id}`);
      } else {
        const run = await api('POST', '/api/runs', body);
        navigate(`/runs/${run.id}`);
      }
    } catch (e) {
      fail(e, e.field && e.field.startsWith('grid') ? grid : spec);
    } finally {
      submit.disabled = false;
    }
  }

  function fail(e, area) {
    replace(result, errorBox(e));
    result.hidden = false;
    if (e.field) selectField(area, e.field.replace(/^(base|grid)\./, ''));
  }
  return null;
}

// Selects the key of a field path ("eval.ppl[0].data") in the JSON text by
// finding each key in turn after the previous one.
function selectField(area, path) {
  const whole = area.value.indexOf(`"${path}"`); // a grid's keys are whole paths
  if (whole >= 0) {
    area.focus();
    area.setSelectionRange(whole, whole + path.length + 2);
    return;
  }
  const keys = path.split(/[.[\]]+/).filter((k) => k && !/^\d+$/.test(k));
  let at = 0;
  let found = -1;
  for (const k of keys) {
    const i = area.value.indexOf(`"${k}"`, at);
    if (i < 0) break;
    found = i;
    at = i + k.length + 2;
  }
  if (found < 0) return;
  area.focus();
  area.setSelectionRange(found, at);
}
