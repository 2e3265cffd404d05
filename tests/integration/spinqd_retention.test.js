// spinqd_retention.test.js - event retention: a finished run's metric and
// progress events leave the events table after events_keep_hours (0 here:
// at the next prune pass), while its metric history, status changes and
// log lines stay.
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
