// spinqd_retention.test.js - event retention: a finished run's metric and
// progress events leave the events table after events_keep_hours (0 here:
// at the next prune pass), while its metric history, status changes and
// log lines stay; keep_checkpoints keeps only a run's newest checkpoints.
import test from 'node:test';
import assert from 'node:assert';
import { Daemon, Sse, tinySpec, waitFor } from './daemon.js';

// Every event a fresh stream of the run replays (from the first), once the
// replay reaches an event that `last` accepts.
async function replay(d, runId, last) {
  const s = new Sse(d.port, `/api/runs/${runId}/events`, { lastEventId: 0 });
  await s.ready;
  await s.waitFor(last, 10000, 'the replay to reach its last event');
  s.close();
  return s.events;
}

test('events of finished runs are pruned after events_keep_hours; metrics stay', async (t) => {
  const d = await new Daemon({ workers: 1, args: ['--events-keep-hours', '0'] }).start();
  t.after(() => d.cleanup());

  const r = await d.req('POST', '/api/runs', tinySpec({ eval: { limit: 6 } }));
  assert.strictEqual(r.status, 201, JSON.stringify(r.json));
  const live = new Sse(d.port, `/api/runs/${r.json.id}/events`);
  await live.ready;
  const isDone = (e) => e.event === 'status' && e.data.status === 'done';
  await live.waitFor(isDone, 60000, 'the run to finish');
  live.close();
  const kinds = new Set(live.events.map((e) => e.event));
  assert.ok(kinds.has('metric') && kinds.has('progress'), `the live stream had metrics and progress: ${[...kinds]}`);

  // the prune pass runs every second with a keep time of 0
  const left = await waitFor(async () => {
    const ev = await replay(d, r.json.id, isDone);
    return ev.some((e) => e.event === 'metric' || e.event === 'progress') ? null : ev;
  }, 15000, 'the metric and progress events to be pruned');
  const statuses = left.filter((e) => e.event === 'status').map((e) => e.data.status || e.data.stage);
  const liveStatuses = live.events.filter((e) => e.event === 'status').map((e) => e.data.status || e.data.stage);
  assert.deepStrictEqual(statuses, liveStatuses, 'status changes stay');
  assert.deepStrictEqual(left.filter((e) => e.event === 'log').length, live.events.filter((e) => e.event === 'log').length,
    'log lines stay');

  const run = await d.run(r.json.id);
  const hist = await d.req('GET', `/api/runs/${r.json.id}/metrics?key=ppl`);
  assert.deepStrictEqual(hist.json.points, [[0, run.metrics.ppl.value]], 'the metric history stays');
  assert.match(d.log, /pruned \d+ metric\/progress events/);
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log);
});

test('events_keep_hours is checked when the daemon starts', async () => {
  for (const bad of ['-1', 'x', '']) {
    const d = new Daemon({ workers: 0, args: ['--events-keep-hours', bad] });
    await assert.rejects(d.start(), /events-keep-hours: expected hours/);
    d.cleanup();
  }
});

test('keep_checkpoints keeps only the newest checkpoints of a run', async (t) => {
  const d = await new Daemon({ workers: 1, args: ['--keep-checkpoints', '2'] }).start();
  t.after(() => d.cleanup());
  const spec = tinySpec({
    seed: 3,
    rotation: { mode: 'spinquant', train: { steps: 12, batch: 1, seqlen: 32, checkpoint_every: 3, w_bits: 4 } },
    quant: { w_bits: 4, a_bits: 4, kv_bits: 4 },
    weights: { method: 'rtn' },
    eval: { ppl: [{ data: 'tinystories/test.txt', seqlen: 64 }], limit: 2 },
  });
  const r = await d.req('POST', '/api/runs', spec);
  assert.strictEqual(r.status, 201, JSON.stringify(r.json));
  const sse = new Sse(d.port, `/api/runs/${r.json.id}/events`);
  await sse.ready;
  await sse.waitFor((e) => e.event === 'status' && e.data.status === 'done', 120000, 'the run to finish');
  sse.close();
  const stored = sse.events.filter((e) => e.event === 'checkpoint').map((e) => e.data.step);
  assert.deepStrictEqual(stored, [3, 6, 9, 12], 'every checkpoint was stored when it came');
  const ck = (await d.req('GET', `/api/runs/${r.json.id}/checkpoints`)).json.checkpoints;
  assert.deepStrictEqual(ck.map((c) => c.step), [9, 12]);
  const old = await d.req('GET', `/api/runs/${r.json.id}/checkpoints/3`);
  assert.strictEqual(old.status, 404);
  const latest = await d.req('GET', `/api/runs/${r.json.id}/checkpoints/latest`);
  assert.strictEqual(latest.status, 200);
  assert.strictEqual(latest.body.length, ck[1].size);
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log);
});
