// pages/run.js - one run: status, stage and progress, the live loss curve,
// scores, log, checkpoints and artifacts, its normalized spec; cancel and
// delete; once it is done, the playground (playground.js).
//
// The run's event stream (/api/runs/ID/events) replays the run's whole story
// from its first event and then follows it live, so the page is built from
// the stream alone after one GET of the run: every train/loss and train/lr
// point goes to the chart, every other metric to the scores, log lines to
// the log. A reconnect resumes after the last event seen (api.js); the
// stream ends after the run's last event.
//
// The loss jumps from step to step (each step is another batch): a slider
// sets an exponential moving average drawn over the raw curve, which stays
// faint behind it (0: raw only), as in TensorBoard; the weight is kept in
// localStorage.
import { api, get, stream, download } from '../api.js';
import { h, replace, fmtNum, fmtBytes, fmtTime, fmtDuration, statusBadge, showError, throttle } from '../dom.js';
import { scoreRows } from '../metrics.js';
import { StepChart, ema } from '../chart.js';
import { navigate } from '../nav.js';
import { playground } from '../playground.js';

export const name = 'run';
const STAGES = ['load', 'fuse', 'rotate', 'learn', 'quantize', 'evaluate', 'write'];
const FINAL = ['done', 'failed', 'canceled'];
const MAX_LOG = 2000;
const SMOOTH_KEY = 'spinq.smoothing';

function savedSmoothing() {
  let v = NaN;
  try { v = Number(localStorage.getItem(SMOOTH_KEY) ?? 0.6); } catch { /* storage off */ }
  return Number.isFinite(v) && v >= 0 && v <= 0.99 ? v : 0.6;
}

// Mean absolute change between neighbouring points: how rough a curve is.
function roughness(ys) {
  const v = ys.filter((y) => y !== null && y !== undefined);
  let s = 0;
  for (let i = 1; i < v.length; i++) s += Math.abs(v[i] - v[i - 1]);
  return v.length > 1 ? s / (v.length - 1) : 0;
}

export async function render(main, { params }) {
  const id = Number(params[0]);
  let run = await get(`/api/runs/${id}`);
  const metrics = { ...run.metrics }; // key -> {step, value}
  const steps = run.spec && run.spec.rotation && run.spec.rotation.mode === 'spinquant' ? run.spec.rotation.train.steps : 0;

  const statusEl = h('span#run-status');
  const stageEl = h('span#run-stage');
  const reasonEl = h('div#run-reason.error', { hidden: true });
  const facts = h('dl.facts');
  const stagesEl = h('ol.stages', STAGES.map((s) => h('li', { dataset: { stage: s } }, s)));
  const progress = h('progress#run-progress', { max: '1', value: '0' });
  const progressText = h('span#run-progress-text.muted');
  const cancelBtn = h('button#cancel', { type: 'button', on: { click: () => act('cancel') } }, 'Cancel');
  const deleteBtn = h('button#delete.danger', { type: 'button', on: { click: () => act('delete') } }, 'Delete');
  const actionsErr = h('div#actions-error.errors', { hidden: true });
  const chartEl = h('div#loss-chart');
  let smoothing = savedSmoothing();
  const smoothValue = h('output#smoothing-value', smoothing.toFixed(2));
  const smoothInput = h('input#smoothing', { type: 'range', min: '0', max: '0.99', step: '0.01', value: String(smoothing),
    'aria-label': 'loss smoothing (EMA weight)' });
  const smoothCtl = h('label.smoothing', 'smoothing ', smoothInput, ' ', smoothValue);
  const scores = h('div#scores');
  const trainFacts = h('div#train-facts.muted');
  const logEl = h('ol#log.log');
  const ckEl = h('div#checkpoints');
  const artEl = h('div#artifacts');
  const live = h('span.live.muted');
  const pgSlot = h('div#playground-slot');

  replace(main,
    h('div.page-head', h('h1', `Run #${id} `, h('span#run-name', run.name || '')), statusEl, live, h('span.spacer'),
      h('a.button', { href: `/compare?runs=${id}` }, 'Compare…'), cancelBtn, deleteBtn),
    actionsErr, reasonEl,
    h('section.grid2',
      h('div', facts),
      h('div', h('div.stage-line', 'stage ', stageEl), stagesEl, h('div.progress-line', progress, ' ', progressText))),
    h('section', h('div.section-head', h('h2', 'Loss'), smoothCtl), chartEl, trainFacts),
    h('section.grid2',
      h('div', h('h2', 'Scores'), scores),
      h('div', h('h2', 'Log'), logEl)),
    h('section.grid2',
      h('div', h('h2', 'Checkpoints'), ckEl),
      h('div', h('h2', 'Artifacts'), artEl)),
    pgSlot,
    h('section', h('details#spec', h('summary', 'Spec (normalized)'), h('pre', JSON.stringify(run.spec, null, 2)))));
  // a finished run's model can be served and talked to
  const showPlayground = () => { if (!pgSlot.firstChild) pgSlot.append(playground(id)); };
  if (run.status === 'done') showPlayground();

  // only a spinquant run learns: the others get a line saying so, not an empty chart
  // series: the raw loss (faint), its EMA (drawn from it each frame), the lr
  const chart = steps ? new StepChart(chartEl, {
    series: [
      { label: 'train/loss', color: 'rgba(37, 99, 235, 0.28)', width: 1, scale: 'loss', axisLabel: 'loss' },
      { label: 'train/loss (smoothed)', color: '#2563eb', width: 2, scale: 'loss', axisLabel: 'loss',
        derive: { from: 0, fn: (pts) => ema(pts, smoothing) } },
      { label: 'train/lr', color: '#ea580c', scale: 'lr', axisLabel: 'lr' },
    ],
    // for anyone who wants to know without pixels (tests): how rough each loss curve is
    onDraw: (data) => {
      chartEl.dataset.roughRaw = String(roughness(data[1]));
      chartEl.dataset.roughSmoothed = String(roughness(data[2]));
    },
  }) : null;
  chartEl.hidden = !chart;
  smoothCtl.hidden = !chart;
  chartEl.dataset.smoothing = String(smoothing);
  smoothInput.addEventListener('input', () => {
    smoothing = Number(smoothInput.value);
    smoothValue.textContent = smoothing.toFixed(2);
    chartEl.dataset.smoothing = String(smoothing);
    try { localStorage.setItem(SMOOTH_KEY, String(smoothing)); } catch { /* storage off */ }
    if (chart) chart.redraw();
  });

  const stagesSeen = new Set(); // from the status events: a stage the pipeline skipped never appears
  function drawHead() {
    replace(statusEl, statusBadge(run.status));
    stageEl.textContent = run.stage || (run.status === 'queued'
      ? (run.slurm_state === 'PENDING' ? '(waiting for a Slurm allocation)' : '(waiting for a worker)') : '—');
    const idx = STAGES.indexOf(run.stage);
    const last = run.status === 'done' ? STAGES.length : idx; // stages before this one are over
    for (const li of stagesEl.children) {
      const i = STAGES.indexOf(li.dataset.stage);
      const ran = stagesSeen.has(li.dataset.stage);
      li.className = i === idx && run.status === 'running' ? 'current'
        : i < last ? (ran ? 'past' : 'skipped') : '';
    }
    if (run.reason && run.status !== 'done') {
      replace(reasonEl, h('strong', run.status === 'queued' ? 'requeued: ' : 'reason: '), run.reason);
      reasonEl.hidden = false;
    } else {
      reasonEl.hidden = true;
    }
    cancelBtn.disabled = !['queued', 'running'].includes(run.status) || run.cancel_requested;
    deleteBtn.disabled = run.status === 'running';
    const took = run.started_at ? fmtDuration((run.finished_at || Date.now() / 1000) - run.started_at) : '—';
    replace(facts, [
      ['model', run.model], ['owner', run.owner], ['tags', (run.tags || []).map((t) => h('span.tag', t))],
      ['sweep', run.sweep_id ? h('a', { href: `/sweeps/${run.sweep_id}` }, `#${run.sweep_id}`) : '—'],
      ['created', fmtTime(run.created_at)], ['started', fmtTime(run.started_at)],
      ['finished', fmtTime(run.finished_at)], ['took', took],
      ['attempts', String(run.attempts ?? 0)], ['worker', workerText()],
      ...(run.slurm_job_id ? [['slurm', slurmText()]] : []),
    ].map(([k, v]) => [h('dt', k), h('dd', { dataset: { fact: k } }, v)]));
  }

  // the worker that runs it or ran it last (the run keeps its name and host)
  function workerText() {
    if (!run.worker_name) return run.worker_id ? `#${run.worker_id}` : '—';
    const id = run.worker_id ? ` #${run.worker_id}` : '';
    return `${run.worker_name}${id}${run.worker_host ? ` on ${run.worker_host}` : ''}`;
  }

  // the run's Slurm job (executor = slurm): its id, Slurm's state, the nodes
  function slurmText() {
    const state = run.slurm_state || '?';
    const cls = /^[A-Z_]+$/.test(state) ? state.toLowerCase() : 'unknown';
    return [`job ${run.slurm_job_id} `, h(`span.badge.slurm-${cls}`, { dataset: { slurmState: state } }, state),
      run.slurm_nodes ? ` on ${run.slurm_nodes}` : '', run.slurm_jobs > 1 ? ` (job ${run.slurm_jobs} of the run)` : ''];
  }

  function drawScores() {
    const rows = scoreRows(metrics, run.spec); // one line per score: no `ppl` and `ppl/DATA` twice
    if (!rows.length) {
      replace(scores, h('p.muted', FINAL.includes(run.status) ? 'No scores.' : 'Scores appear when the evaluation runs.'));
    } else {
      replace(scores, h('table.kv', h('tbody', rows.map(({ key, note }) => h('tr', { dataset: { key } },
        h('th', key, note ? h('span.muted.note', ` ${note}`) : null), h('td.num.value', fmtNum(metrics[key].value)))))));
    }
    const tl = metrics['train/loss'];
    const lr = metrics['train/lr'];
    const gn = metrics['train/grad_norm'];
    trainFacts.textContent = tl
      ? `step ${tl.step}${steps ? ` of ${steps}` : ''} · loss ${fmtNum(tl.value)}${lr ? ` · lr ${fmtNum(lr.value)}` : ''}${gn ? ` · grad norm ${fmtNum(gn.value)}` : ''}`
      : steps ? 'No training steps yet.' : 'This run learns no rotation (rotation.mode is not spinquant).';
  }
  const drawScoresSoon = throttle(drawScores, 250);

  function drawProgress(p) {
    progress.max = Math.max(1, p.total);
    progress.value = Math.min(p.done, p.total);
    progressText.textContent = `${p.stage}: ${p.done} / ${p.total}`;
  }

  // Loads can overlap (each checkpoint or artifact event starts one, and a
  // response may take longer than the throttle's interval): only the newest
  // load may draw, or an older, slower answer would hide the newest files.
  let filesLoad = 0;
  async function loadFiles() {
    const mine = ++filesLoad;
    try {
      const [ck, art] = await Promise.all([get(`/api/runs/${id}/checkpoints`), get(`/api/runs/${id}/artifacts`)]);
      if (mine !== filesLoad) return;
      replace(ckEl, fileTable(ck.checkpoints.map((c) => ({
        label: `step ${c.step}`, size: c.size, sha256: c.sha256, t: c.created_at,
        path: `/api/runs/${id}/checkpoints/${c.step}`, file: `run${id}-step${c.step}.ckpt`,
      })), 'No checkpoints.'));
      replace(artEl, fileTable(art.artifacts.map((a) => ({
        label: a.name, size: a.size, sha256: a.sha256, t: a.created_at,
        path: `/api/runs/${id}/artifacts/${encodeURIComponent(a.name)}`, file: a.name,
      })), 'No artifacts yet.'));
    } catch (e) {
      showError(actionsErr, e);
    }
  }
  const loadFilesSoon = throttle(loadFiles, 500);

  function fileTable(rows, empty) {
    if (!rows.length) return h('p.muted', empty);
    return h('table.files', h('thead', h('tr', h('th', 'file'), h('th.num', 'size'), h('th', 'sha256'), h('th', 'created'))),
      h('tbody', rows.map((r) => h('tr',
        h('td', h('a', { href: r.path, on: { click: (ev) => { ev.preventDefault(); download(r.path, r.file).catch((e) => showError(actionsErr, e)); } } }, r.label)),
        h('td.num', fmtBytes(r.size)), h('td', h('code.sha', { title: r.sha256 }, r.sha256)), h('td', fmtTime(r.t))))));
  }

  function addLog(ev) {
    const li = h('li', { class: `level-${/^[a-z]+$/.test(ev.level) ? ev.level : 'info'}` },
      h('span.t', fmtTime(ev.t).slice(11)), ' ', h('span.lvl', ev.level), ' ', ev.text);
    const atBottom = logEl.scrollTop + logEl.clientHeight >= logEl.scrollHeight - 4;
    logEl.append(li);
    while (logEl.childElementCount > MAX_LOG) logEl.firstElementChild.remove();
    if (atBottom) logEl.scrollTop = logEl.scrollHeight;
  }

  let runLoad = 0;  // as with loadFiles: only the newest answer is drawn
  async function refresh() {
    const mine = ++runLoad;
    try {
      const got = await get(`/api/runs/${id}`);
      if (mine !== runLoad) return;
      run = got;
      Object.assign(metrics, run.metrics);
      drawHead();
      drawScores();
    } catch (e) {
      if (e.status === 404) gone();
      else showError(actionsErr, e);
    }
  }
  const refreshSoon = throttle(refresh, 300);

  function gone() {
    replace(main, h('div.page-head', h('h1', `Run #${id}`)), h('p', 'This run was deleted. ', h('a', { href: '/' }, 'Back to the runs')));
  }

  async function act(what) {
    const verb = what === 'cancel' ? 'Cancel' : 'Delete';
    if (!window.confirm(`${verb} run #${id} (${run.name})?`)) return;
    actionsErr.hidden = true;
    try {
      if (what === 'cancel') {
        run = await api('POST', `/api/runs/${id}/cancel`);
        Object.assign(metrics, run.metrics);
        drawHead();
      } else {
        await api('DELETE', `/api/runs/${id}`);
        navigate('/');
      }
    } catch (e) {
      showError(actionsErr, e);
    }
  }

  drawHead();
  drawScores();
  loadFiles();

  const close = stream(`/api/runs/${id}/events`, {
    status: (ev) => {
      run.status = ev.status;
      if (ev.stage) stagesSeen.add(ev.stage);
      if ('stage' in ev) run.stage = ev.stage;
      else if (ev.status !== 'running') run.stage = null;
      if (ev.reason) run.reason = ev.reason;
      if (ev.attempt) run.attempts = ev.attempt;
      if (ev.worker_id) run.worker_id = ev.worker_id;
      if (ev.worker_name) run.worker_name = ev.worker_name;
      if (ev.worker_host) run.worker_host = ev.worker_host;
      drawHead();
      refreshSoon(); // times, attempts, the final metrics
      if (FINAL.includes(ev.status)) loadFilesSoon();
      if (ev.status === 'done') showPlayground();
    },
    metric: (ev) => {
      if (chart && ev.key === 'train/loss') chart.add(0, ev.step, ev.value);
      else if (chart && ev.key === 'train/lr') chart.add(2, ev.step, ev.value);
      const cur = metrics[ev.key];
      if (!cur || ev.step >= cur.step) metrics[ev.key] = { step: ev.step, value: ev.value };
      drawScoresSoon();
    },
    slurm: (ev) => {
      if (ev.job_id !== run.slurm_job_id) run.slurm_jobs = (run.slurm_jobs || 0) + 1;
      run.slurm_job_id = ev.job_id;
      run.slurm_state = ev.state;
      run.slurm_nodes = ev.nodes;
      drawHead();
    },
    progress: (ev) => drawProgress(ev),
    log: (ev) => addLog(ev),
    checkpoint: () => loadFilesSoon(),
    artifact: () => loadFilesSoon(),
    deleted: () => gone(),
  }, (s) => {
    live.textContent = { live: '● live', connecting: '○ connecting', ended: '' }[s] ?? '○ reconnecting';
    live.dataset.state = s;
  });

  return () => { close(); if (chart) chart.destroy(); };
}

