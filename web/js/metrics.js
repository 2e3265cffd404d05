// metrics.js - what the dashboard knows about metric keys (worker/pipeline_*.c
// emits them): training curves under train/, the headline scores of the first
// eval dataset (ppl, kld, top1, ...), per-dataset ones as ppl/DATA, task
// accuracies as acc/TASK. Which direction is better, which to show first.

const HIGHER_BETTER = /^(top1|acc)(\/|$)|(^|\/)acc/;

// -1: lower is better (perplexity, divergence, loss); +1: higher is better.
export function direction(key) {
  return HIGHER_BETTER.test(key) ? 1 : -1;
}

export const isTrain = (key) => key.startsWith('train/');

const HEADLINE = ['ppl', 'kld', 'top1'];

// The score columns for a table of runs: headline scores first, then task
// accuracies, then the last training loss; at most `max`.
export function scoreColumns(runs, max = 6) {
  const keys = new Set();
  for (const r of runs) for (const k of Object.keys(r.metrics || {})) keys.add(k);
  const cols = HEADLINE.filter((k) => keys.has(k));
  for (const k of [...keys].sort()) if (/^acc/.test(k) && !cols.includes(k)) cols.push(k);
  if (keys.has('train/loss')) cols.push('train/loss');
  return cols.slice(0, max);
}

// Every metric key of some runs, scores before training ones.
export function allKeys(runs) {
  const keys = new Set();
  for (const r of runs) for (const k of Object.keys(r.metrics || {})) keys.add(k);
  const rank = (k) => (isTrain(k) ? 100 : 0) + (HEADLINE.includes(k) ? HEADLINE.indexOf(k) : 10);
  return [...keys].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

export function metricValue(run, key) {
  const m = run.metrics && run.metrics[key];
  return m ? m.value : null;
}

// The pipeline stores each headline score of the first eval dataset twice:
// as `ppl` (what listings sort by) and as `ppl/DATA` with the same value.
const TWINNED = ['ppl', 'kld', 'top1', 'kld_p99', 'dp_rms', 'ppl_ratio'];
const firstData = (spec) => spec && spec.eval && spec.eval.ppl && spec.eval.ppl[0] ? spec.eval.ppl[0].data : null;

// 1 when key is the KEY/DATA twin of a headline score of this run (same value).
export function isTwin(key, metrics, spec) {
  const data = firstData(spec);
  const slash = key.indexOf('/');
  if (!data || slash < 0 || key.slice(slash + 1) !== data) return false;
  const head = key.slice(0, slash);
  return TWINNED.includes(head) && metrics[head] !== undefined && metrics[key] !== undefined &&
    metrics[head].value === metrics[key].value;
}

// A run's scores, one row each: [{key, note}] with the twins left out and
// the dataset named beside the headline score instead.
export function scoreRows(metrics, spec) {
  const keys = allKeys([{ metrics }]).filter((k) => !isTrain(k));
  const data = firstData(spec);
  const twins = new Set(keys.filter((k) => isTwin(k, metrics, spec)));
  return keys.filter((k) => !twins.has(k)).map((k) => ({ key: k, note: twins.has(`${k}/${data}`) ? data : null }));
}
