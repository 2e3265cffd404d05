// spinqd_jobs.test.js - a job end to end over HTTP against a real daemon:
// submitted, run by a local worker (load, fp32 perplexity), progress over
// SSE while it runs, metrics, artifacts with their sha256, listings.
import test from 'node:test';
import assert from 'node:assert';
import crypto from 'node:crypto';
import { Daemon, Sse, tinySpec } from './daemon.js';

test('spinqd runs jobs end to end', async (t) => {
  const d = await new Daemon({ workers: 1 }).start();
  t.after(() => d.cleanup());

  await t.test('health and whoami answer on loopback without a token', async () => {
    const h = await d.req('GET', '/api/health');
    assert.strictEqual(h.status, 200);
    assert.strictEqual(h.json.status, 'ok');
    assert.strictEqual(h.json.auth, false);
    const w = await d.req('GET', '/api/whoami');
    assert.deepStrictEqual(w.json, { name: 'local', role: 'admin' });
  });

  let runId, sse;
  await t.test('a submitted job reports progress over SSE while it runs, then finishes', async () => {
    const spec = tinySpec({ name: 'e2e', tags: ['it'], eval: { limit: 12 } });
    const r = await d.req('POST', '/api/runs', spec);
    assert.strictEqual(r.status, 201, JSON.stringify(r.json));
    runId = r.json.id;
    assert.strictEqual(r.json.status, 'queued');
    assert.strictEqual(r.json.spec.eval.limit, 12);
    assert.strictEqual(r.json.spec.quant.w_sym, true, 'the stored spec has every default filled in');
    sse = new Sse(d.port, `/api/runs/${runId}/events`);
    await sse.ready;
    assert.strictEqual(sse.status, 200);
    const progress = await sse.waitFor((e) => e.event === 'progress', 30000, 'a progress event');
    assert.strictEqual(progress.data.stage, 'evaluate');
    assert.ok(progress.data.done < progress.data.total, 'progress arrives before the stage ends');
    const run = await d.run(runId);
    assert.strictEqual(run.status, 'running', 'the run is still running when progress arrives');
    const done = await sse.waitFor((e) => e.event === 'status' && e.data.status === 'done', 60000, 'done');
    assert.ok(done.id > progress.id);
    const ids = sse.events.map((e) => e.id);
    assert.deepStrictEqual(ids, [...ids].sort((a, b) => a - b), 'event ids increase');
    const stages = sse.events.filter((e) => e.event === 'status' && e.data.stage).map((e) => e.data.stage);
    assert.deepStrictEqual(stages, ['load', 'evaluate', 'write']);
  });

  await t.test('the run holds its perplexity; metric history honours since_step', async () => {
    const run = await d.run(runId);
    assert.strictEqual(run.status, 'done');
    assert.strictEqual(run.attempts, 1);
    const ppl = run.metrics.ppl.value;
    assert.ok(ppl > 1 && ppl < 20, `stories260K perplexity on TinyStories should be small, got ${ppl}`);
    assert.strictEqual(run.metrics['ppl/tinystories/test.txt'].value, ppl);
    const hist = await d.req('GET', `/api/runs/${runId}/metrics?key=ppl`);
    assert.deepStrictEqual(hist.json.points, [[0, ppl]]);
    const later = await d.req('GET', `/api/runs/${runId}/metrics?key=ppl&since_step=0`);
    assert.deepStrictEqual(later.json.points, []);
    const ev = sse.events.find((e) => e.event === 'metric' && e.data.key === 'ppl');
    assert.strictEqual(ev.data.value, ppl, 'the SSE metric equals the stored one');
  });

  await t.test('artifacts download with the recorded sha256', async () => {
    const list = await d.req('GET', `/api/runs/${runId}/artifacts`);
    const res = list.json.artifacts.find((a) => a.name === 'results.json');
    assert.ok(res, 'results.json is an artifact');
    const dl = await d.req('GET', `/api/runs/${runId}/artifacts/results.json`);
    assert.strictEqual(dl.status, 200);
    assert.strictEqual(dl.body.length, res.size);
    const sha = crypto.createHash('sha256').update(dl.body).digest('hex');
    assert.strictEqual(sha, res.sha256);
    assert.strictEqual(dl.headers['x-sha256'], sha);
    const doc = JSON.parse(dl.body.toString('utf8'));
    assert.strictEqual(doc.spec.name, 'e2e');
    const run = await d.run(runId);
    assert.strictEqual(doc.results.ppl, run.metrics.ppl.value);
    const none = await d.req('GET', `/api/runs/${runId}/artifacts/model.bin`);
    assert.strictEqual(none.status, 404);
    const ck = await d.req('GET', `/api/runs/${runId}/checkpoints`);
    assert.deepStrictEqual(ck.json.checkpoints, [], 'fp32 evaluation keeps no rotation checkpoint');
  });

  await t.test('Last-Event-ID resumes a run stream without loss or repeats', async () => {
    // the finished run's stream ended after its last event with `end` (not a stored event: no id)
    await sse.waitFor((e) => e.event === 'end', 10000, 'the end of the stream');
    assert.deepStrictEqual(sse.events[sse.events.length - 1].data, { run_id: runId, status: 'done' });
    const all = sse.events.filter((e) => e.event !== 'end');
    const mid = all[Math.floor(all.length / 2)].id;
    const again = new Sse(d.port, `/api/runs/${runId}/events`, { lastEventId: mid });
    await again.ready;
    await again.waitFor((e) => e.event === 'end', 10000, 'the rest and the end');
    assert.deepStrictEqual(again.events.map((e) => e.id ?? 'end'), [...all.filter((e) => e.id > mid).map((e) => e.id), 'end']);
    again.close();
    sse.close();
  });

  await t.test('a rotated full-precision model scores the same perplexity (rotation invariance)', async () => {
    const base = await d.run(runId);
    const r = await d.req('POST', '/api/runs', tinySpec({ rotation: { mode: 'hadamard' }, eval: { limit: 12 } }));
    assert.strictEqual(r.status, 201, JSON.stringify(r.json));
    const run = await d.waitRun(r.json.id, ['done', 'failed']);
    assert.strictEqual(run.status, 'done', run.reason);
    const a = base.metrics.ppl.value, b = run.metrics.ppl.value;
    assert.ok(Math.abs(a - b) / a < 1e-4, `ppl ${a} vs rotated ${b}`);
    const arts = (await d.req('GET', `/api/runs/${run.id}/artifacts`)).json.artifacts.map((x) => x.name).sort();
    assert.deepStrictEqual(arts, ['results.json', 'rotation.safetensors']);
  });

  await t.test('KL divergence and a zero-shot task report their metrics', async () => {
    // W16A8KV8 after a Hadamard rotation: close to full precision, not equal
    const spec = tinySpec({
      rotation: { mode: 'hadamard' },
      quant: { a_bits: 8, kv_bits: 8 },
      eval: { kld: true, tasks: [{ name: 'arc_easy', data: 'eval/arc/ARC-Easy-Test.jsonl' }], limit: 6 },
    });
    const r = await d.req('POST', '/api/runs', spec);
    assert.strictEqual(r.status, 201, JSON.stringify(r.json));
    const run = await d.waitRun(r.json.id, ['done', 'failed']);
    assert.strictEqual(run.status, 'done', run.reason);
    const m = run.metrics;
    assert.ok(m.kld.value > 0 && m.kld.value < 0.05, `kld ${m.kld.value}`);
    assert.ok(m.top1.value > 0.9 && m.top1.value <= 1, `top-1 agreement ${m.top1.value}`);
    assert.ok(m['acc/arc_easy'].value >= 0 && m['acc/arc_easy'].value <= 1);
  });

  await t.test('listing filters by tag, status and text, and pages', async () => {
    const byTag = await d.req('GET', '/api/runs?tag=it');
    assert.deepStrictEqual(byTag.json.runs.map((r) => r.id), [runId]);
    const failed = await d.req('GET', '/api/runs?status=failed');
    assert.strictEqual(failed.json.total, 0);
    const done = await d.req('GET', '/api/runs?status=done');
    assert.strictEqual(done.json.total, 3);
    const text = await d.req('GET', '/api/runs?q=e2e');
    assert.deepStrictEqual(text.json.runs.map((r) => r.id), [runId]);
    const page = await d.req('GET', '/api/runs?limit=1&offset=1');
    assert.strictEqual(page.json.runs.length, 1);
    assert.strictEqual(page.json.total, 3);
    // keyset pages (before_id) walk the same newest-first order as offset pages
    const all = (await d.req('GET', '/api/runs')).json;
    assert.strictEqual(all.next_before_id, null, 'a page that is not full has no next cursor');
    const walked = [];
    let cursor = '';
    for (;;) {
      const p = (await d.req('GET', `/api/runs?limit=2${cursor}`)).json;
      assert.strictEqual(p.total, 3);
      walked.push(...p.runs.map((r) => r.id));
      if (p.next_before_id === null) break;
      assert.strictEqual(p.next_before_id, p.runs[p.runs.length - 1].id);
      cursor = `&before_id=${p.next_before_id}`;
    }
    assert.deepStrictEqual(walked, all.runs.map((r) => r.id));
    const ordered = await d.req('GET', `/api/runs?order=ppl&before_id=${runId}`);
    assert.strictEqual(ordered.status, 400);
    assert.strictEqual(ordered.json.error.field, 'before_id');
  });

  await t.test('cancel: a queued run is canceled at once, a running one by its worker', async () => {
    const long = await d.req('POST', '/api/runs', tinySpec({ eval: { limit: 400 } }));
    const queued = await d.req('POST', '/api/runs', tinySpec());
    const c1 = await d.req('POST', `/api/runs/${queued.json.id}/cancel`);
    assert.strictEqual(c1.status, 200);
    assert.strictEqual(c1.json.status, 'canceled');
    await d.waitRun(long.json.id, ['running']);
    const c2 = await d.req('POST', `/api/runs/${long.json.id}/cancel`);
    assert.strictEqual(c2.status, 202);
    const run = await d.waitRun(long.json.id, ['canceled', 'done', 'failed'], 30000);
    assert.strictEqual(run.status, 'canceled');
    const again = await d.req('POST', `/api/runs/${long.json.id}/cancel`);
    assert.strictEqual(again.status, 409);
    const del = await d.req('DELETE', `/api/runs/${queued.json.id}`);
    assert.strictEqual(del.status, 200);
    assert.strictEqual((await d.req('GET', `/api/runs/${queued.json.id}`)).status, 404);
  });

  await t.test('workers, the global stream and Prometheus metrics', async () => {
    const w = await d.req('GET', '/api/workers');
    assert.strictEqual(w.json.workers.length, 1);
    assert.strictEqual(w.json.workers[0].kind, 'local');
    assert.ok(w.json.workers[0].jobs_done >= 3);
    const g = new Sse(d.port, '/api/events');
    await g.ready;
    const r = await d.req('POST', '/api/runs', tinySpec({ eval: { limit: 1 } }));
    await g.waitFor((e) => e.event === 'status' && e.data.run_id === r.json.id && e.data.status === 'done', 30000,
      'the new run on the global stream');
    g.close();
    const m = await d.req('GET', '/metrics');
    const text = m.body.toString();
    assert.match(text, /spinqd_runs\{state="done"\} \d+/);
    assert.match(text, /spinqd_queue_length 0/);
    assert.match(text, /spinqd_workers\{state="idle"\} 1/);
    assert.match(text, /spinqd_http_requests_total\{route="\/api\/runs",method="POST",code="201"\} \d+/);
    assert.match(text, /spinqd_http_request_duration_seconds_bucket\{route="\/api\/runs\/\{id\}",le="\+Inf"\} \d+/);
  });

  await t.test('SIGTERM drains and exits cleanly', async () => {
    const { code, signal } = await d.stop();
    assert.strictEqual(signal, null);
    assert.strictEqual(code, 0, d.log.slice(-3000));
  });
});
