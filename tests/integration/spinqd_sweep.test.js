// spinqd_sweep.test.js - a sweep of 6 points runs to completion on 2
// workers, and listings ordered by a metric are ordered by it.
import test from 'node:test';
import assert from 'node:assert';
import { Daemon, Sse, tinySpec, waitFor } from './daemon.js';

test('a 6-point sweep completes with 2 workers; ordering by a metric is correct', async (t) => {
  const d = await new Daemon({ workers: 2 }).start();
  t.after(() => d.cleanup());
  const events = new Sse(d.port, '/api/events');
  await events.ready;
  const grid = { 'eval.ppl[0].seqlen': [32, 64, 128], 'rotation.mode': ['none', 'random'] };
  const r = await d.req('POST', '/api/sweeps', { name: 'seqlen x rotation', base: tinySpec({ eval: { limit: 6 } }), grid });
  assert.strictEqual(r.status, 201, JSON.stringify(r.json));
  const sweepId = r.json.sweep.id;
  assert.strictEqual(r.json.runs.length, 6);
  assert.deepStrictEqual(r.json.sweep.grid, grid);

  const runs = await waitFor(async () => {
    const l = (await d.req('GET', `/api/runs?sweep=${sweepId}&limit=100`)).json.runs;
    return l.every((x) => ['done', 'failed'].includes(x.status)) ? l : null;
  }, 120000, 'every run of the sweep to finish');
  for (const x of runs) assert.strictEqual(x.status, 'done', `${x.name}: ${x.reason}`);
  assert.strictEqual(new Set(runs.map((x) => x.name)).size, 6, 'each point is named for its grid values');
  assert.ok(runs.some((x) => x.name.includes('eval.ppl[0].seqlen=32 rotation.mode="random"')), runs.map((x) => x.name).join('\n'));

  // both workers took part
  const workers = new Set(events.events.filter((e) => e.event === 'status' && e.data.status === 'running' && e.data.worker_id)
    .map((e) => e.data.worker_id));
  assert.strictEqual(workers.size, 2, 'both workers ran points');
  events.close();

  const ppl = (x) => x.metrics.ppl.value;
  const asc = (await d.req('GET', `/api/runs?sweep=${sweepId}&order=ppl`)).json.runs;
  assert.deepStrictEqual(asc.map(ppl), runs.map(ppl).sort((a, b) => a - b));
  const desc = (await d.req('GET', `/api/runs?sweep=${sweepId}&order=-ppl`)).json.runs;
  assert.deepStrictEqual(desc.map(ppl), runs.map(ppl).sort((a, b) => b - a));
  // longer windows give the model more context: lower perplexity
  const bySeqlen = (n) => asc.filter((x) => x.name.includes(`seqlen=${n} `)).map(ppl);
  assert.ok(Math.max(...bySeqlen(128)) < Math.min(...bySeqlen(32)), 'ppl at seqlen 128 below ppl at 32');
  // the rotation leaves the full-precision model's perplexity unchanged
  for (const n of [32, 64, 128]) {
    const [a, b] = bySeqlen(n);
    assert.ok(Math.abs(a - b) / a < 1e-4, `seqlen ${n}: ${a} vs ${b}`);
  }

  const sw = (await d.req('GET', `/api/sweeps/${sweepId}?order=ppl`)).json;
  assert.strictEqual(sw.name, 'seqlen x rotation');
  assert.deepStrictEqual(sw.runs_by_status, { done: 6 });
  assert.deepStrictEqual(sw.runs.map((x) => x.id), asc.map((x) => x.id));
  const listed = (await d.req('GET', '/api/sweeps')).json.sweeps;
  assert.strictEqual(listed[0].id, sweepId);

  // the other runs of the daemon are not in the sweep's listing, and a
  // metric that some runs lack sorts them last
  // (a window longer than the model's context: the evaluate stage fails it, before any ppl)
  const solo = (await d.req('POST', '/api/runs', tinySpec({ eval: { ppl: [{ data: 'tinystories/test.txt', seqlen: 2048 }] } }))).json.id;
  await d.waitRun(solo, ['failed']);
  const all = (await d.req('GET', '/api/runs?order=ppl&limit=100')).json.runs;
  assert.strictEqual(all[all.length - 1].id, solo);
  assert.strictEqual((await d.req('GET', `/api/runs?sweep=${sweepId}`)).json.total, 6);
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log.slice(-3000));
});
