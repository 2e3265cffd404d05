// spinqd_resilience.test.js - runs survive what happens to processes:
// kill -9 of a worker mid-run (the run resumes elsewhere and finishes; after
// max_attempts it fails with the reason), kill -9 of the daemon (a restart
// loses no run and resumes it), SIGTERM (drain, exit 0, resume on restart),
// and malformed frames on the worker port (that connection dropped, the
// daemon unharmed).
import test from 'node:test';
import assert from 'node:assert';
import net from 'node:net';
import { Daemon, Sse, tinySpec, waitFor, sleep } from './daemon.js';
import { frame, u32, u64, i64, f64, str, bytes, hello, ProtoWorker } from './proto.js';

// A job long enough to be killed in the middle (a few seconds).
const longSpec = (extra = {}) => tinySpec({ eval: { limit: 60 }, ...extra });

function alive(pid) {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

async function workerOf(d, runId) {
  return waitFor(async () => (await d.req('GET', '/api/workers')).json.workers.find((w) => w.run_id === runId),
    30000, `a worker busy with run ${runId}`);
}

test('kill -9 of a worker mid-run: the run resumes on another worker and finishes', async (t) => {
  const d = await new Daemon({ workers: 2 }).start();
  t.after(() => d.cleanup());
  const r = await d.req('POST', '/api/runs', longSpec());
  const id = r.json.id;
  const sse = new Sse(d.port, `/api/runs/${id}/events`);
  await sse.waitFor((e) => e.event === 'progress', 30000, 'progress');
  const w = await workerOf(d, id);
  process.kill(w.pid, 'SIGKILL');
  const requeued = await sse.waitFor((e) => e.event === 'status' && e.data.status === 'queued', 10000, 're-queue');
  assert.match(requeued.data.reason, /went away \(process killed by signal 9|went away \(end of stream/);
  const second = await sse.waitFor((e) => e.event === 'status' && e.data.status === 'running' && e.data.attempt === 2,
    20000, 'the second attempt');
  assert.notStrictEqual(second.data.worker_id, w.id, 'the other worker took it');
  const run = await d.waitRun(id, ['done', 'failed'], 90000);
  assert.strictEqual(run.status, 'done', run.reason);
  assert.strictEqual(run.attempts, 2);
  assert.ok(run.metrics.ppl.value > 1);
  sse.close();
  // the killed worker was restarted by the supervisor
  await waitFor(async () => (await d.req('GET', '/api/health')).json.workers.connected === 2, 20000, 'restart');
  const restarted = (await d.req('GET', '/api/workers')).json.workers.find((x) => x.id === w.id);
  assert.strictEqual(restarted.restarts, 1);
  assert.notStrictEqual(restarted.pid, w.pid);
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log.slice(-3000));
});

test('a run whose worker keeps dying fails after max_attempts, with the reason', async (t) => {
  const d = await new Daemon({ workers: 1, args: ['--max-attempts', '2'] }).start();
  t.after(() => d.cleanup());
  const id = (await d.req('POST', '/api/runs', longSpec())).json.id;
  for (let attempt = 1; attempt <= 2; attempt++) {
    await waitFor(async () => (await d.run(id)).attempts === attempt && (await d.run(id)).status === 'running', 30000,
      `attempt ${attempt}`);
    const w = await workerOf(d, id);
    await sleep(300);
    process.kill(w.pid, 'SIGKILL');
    await waitFor(async () => (await d.run(id)).status !== 'running', 10000, 'the run to leave running');
  }
  const run = await d.waitRun(id, ['failed', 'done'], 20000);
  assert.strictEqual(run.status, 'failed');
  assert.match(run.reason, /gave up after 2 attempts/);
  assert.match(run.reason, /went away/);
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log.slice(-3000));
});

test('kill -9 of the daemon: a restart loses no run and resumes the interrupted one', async (t) => {
  const d = await new Daemon({ workers: 1 }).start();
  t.after(() => d.cleanup());
  const first = (await d.req('POST', '/api/runs', longSpec())).json.id;
  const second = (await d.req('POST', '/api/runs', tinySpec())).json.id;
  const sse = new Sse(d.port, `/api/runs/${first}/events`);
  await sse.waitFor((e) => e.event === 'progress', 30000, 'progress');
  sse.close();
  const w = await workerOf(d, first);
  await d.kill9();
  // the local worker dies with its daemon
  await waitFor(async () => !alive(w.pid), 5000, 'the orphaned worker to exit');
  await d.start();
  const runs = (await d.req('GET', '/api/runs')).json;
  assert.strictEqual(runs.total, 2, 'no run lost');
  const a = await d.waitRun(first, ['done', 'failed'], 90000);
  assert.strictEqual(a.status, 'done', a.reason);
  assert.strictEqual(a.attempts, 2);
  const b = await d.waitRun(second, ['done', 'failed'], 60000);
  assert.strictEqual(b.status, 'done', b.reason);
  const events = [];
  const replay = new Sse(d.port, `/api/runs/${first}/events`);
  await replay.waitFor((e) => e.event === 'status' && e.data.status === 'done', 10000, 'the full history');
  events.push(...replay.events);
  replay.close();
  assert.ok(events.some((e) => e.event === 'status' && e.data.status === 'queued' &&
    /daemon stopped while it ran/.test(e.data.reason)), 'the recovery is in the run history');
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log.slice(-3000));
});

test('SIGTERM drains: the running run is re-queued without using an attempt and resumes after restart', async (t) => {
  const d = await new Daemon({ workers: 1 }).start();
  t.after(() => d.cleanup());
  const id = (await d.req('POST', '/api/runs', longSpec())).json.id;
  const sse = new Sse(d.port, `/api/runs/${id}/events`);
  await sse.waitFor((e) => e.event === 'progress', 30000, 'progress');
  sse.close();
  const { code, signal } = await d.stop('SIGTERM');
  assert.strictEqual(signal, null);
  assert.strictEqual(code, 0, d.log.slice(-3000));
  assert.match(d.log, /draining/);
  await d.start();
  const queued = await d.run(id);
  assert.ok(['queued', 'running'].includes(queued.status), queued.status);
  const run = await d.waitRun(id, ['done', 'failed'], 90000);
  assert.strictEqual(run.status, 'done', run.reason);
  assert.strictEqual(run.attempts, 1, 'a graceful stop is not counted as an attempt');
  const { code: c2 } = await d.stop();
  assert.strictEqual(c2, 0);
});

// Sends bytes on a fresh connection to the worker port; resolves with what
// came back once the daemon closes it.
function converse(port, chunks) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const got = [];
    const timer = setTimeout(() => { s.destroy(); reject(new Error('the daemon did not close the connection')); }, 15000);
    s.on('data', (d) => got.push(d));
    s.on('error', () => {});
    s.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(got)); });
    s.on('connect', async () => {
      for (const c of chunks) { s.write(c); await sleep(50); }
    });
  });
}

test('malformed frames on the worker port drop that connection only', async (t) => {
  const d = await new Daemon({ workers: 1 }).start();
  t.after(() => d.cleanup());
  const cases = [
    ['an HTTP request', [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]],
    ['random bytes', [Buffer.from([0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9])]],
    ['a newer protocol version', [frame(1, Buffer.alloc(4), { version: 9 })]],
    ['an unknown frame type', [frame(99)]],
    ['an absurd length', [frame(1, Buffer.alloc(0), { length: 0x7fffffff })]],
    ['a truncated hello', [frame(1, u32(1))]],
    ['a frame before hello', [frame(10, Buffer.alloc(0))]],
    ['hello, then a metric for a run it does not have', [hello('evil'),
      frame(10, Buffer.concat([Buffer.alloc(8, 0), str('loss'), Buffer.alloc(16)]))]],
    ['hello, then a job (a daemon frame)', [hello('evil2'), frame(4, Buffer.alloc(0))]],
    ['hello, then trailing bytes in a ping', [hello('evil3'), frame(7, Buffer.alloc(9))]],
  ];
  for (const [name, chunks] of cases) {
    await converse(d.workerPort, chunks);
    const h = await d.req('GET', '/api/health');
    assert.strictEqual(h.status, 200, `after ${name}`);
  }
  // the legitimate worker is untouched and still runs jobs
  assert.strictEqual((await d.req('GET', '/api/health')).json.workers.connected, 1);
  const id = (await d.req('POST', '/api/runs', tinySpec())).json.id;
  const run = await d.waitRun(id, ['done', 'failed'], 60000);
  assert.strictEqual(run.status, 'done', run.reason);
  assert.match(d.log, /protocol error: bad frame magic/);
  assert.match(d.log, /protocol error: metric for run 0, but the worker's run is 0/);
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log.slice(-3000));
});

test('checkpoints reach the store and come back with the job when a run resumes elsewhere', async (t) => {
  const { createHash, randomBytes } = await import('node:crypto');
  const d = await new Daemon({ workers: 0 }).start();
  t.after(() => d.cleanup());
  const id = (await d.req('POST', '/api/runs', tinySpec())).json.id;
  const sse = new Sse(d.port, `/api/runs/${id}/events`);

  const w1 = new ProtoWorker(d.workerPort, 'learner-1');
  await w1.next(2); // welcome
  const j1 = await w1.job();
  assert.strictEqual(j1.runId, id);
  assert.strictEqual(j1.attempt, 1);
  assert.strictEqual(j1.ckptStep, -1);
  assert.strictEqual(j1.spec.model, 'stories260K');
  const c10 = randomBytes(3000), c20 = randomBytes(5000);
  w1.send(9, u64(id), str('learn'));
  for (let step = 1; step <= 20; step++) w1.send(10, u64(id), str('train/loss'), i64(step), f64(3 - step * 0.05));
  w1.send(13, u64(id), i64(10), bytes(c10));
  w1.send(13, u64(id), i64(20), bytes(c20));
  await sse.waitFor((e) => e.event === 'checkpoint' && e.data.step === 20, 10000, 'the second checkpoint event');
  w1.sock.destroy(); // the worker dies mid-learning

  await waitFor(async () => (await d.run(id)).status === 'queued', 10000, 'the run back in the queue');
  const ck = (await d.req('GET', `/api/runs/${id}/checkpoints`)).json.checkpoints;
  assert.deepStrictEqual(ck.map((c) => c.step), [10, 20]);
  assert.strictEqual(ck[1].sha256, createHash('sha256').update(c20).digest('hex'));
  const dl = await d.req('GET', `/api/runs/${id}/checkpoints/latest`);
  assert.ok(dl.body.equals(c20));
  assert.strictEqual(dl.headers['x-checkpoint-step'], '20');
  assert.ok((await d.req('GET', `/api/runs/${id}/checkpoints/10`)).body.equals(c10));
  const hist = (await d.req('GET', `/api/runs/${id}/metrics?key=train/loss&since_step=15`)).json.points;
  assert.deepStrictEqual(hist.map((p) => p[0]), [16, 17, 18, 19, 20]);

  const w2 = new ProtoWorker(d.workerPort, 'learner-2');
  await w2.next(2);
  const j2 = await w2.job();
  assert.strictEqual(j2.runId, id);
  assert.strictEqual(j2.attempt, 2);
  assert.strictEqual(j2.ckptStep, 20);
  assert.ok(j2.ckpt.equals(c20), 'the job carries the last checkpoint, byte for byte');
  w2.send(15, u64(id), Buffer.from([0]), str(''));
  const run = await d.waitRun(id, ['done', 'failed'], 10000);
  assert.strictEqual(run.status, 'done');
  assert.strictEqual(run.attempts, 2);
  sse.close();
  w2.sock.destroy();
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log.slice(-3000));
});
