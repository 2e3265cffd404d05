// spinqd_remote.test.js - the remote worker's connection, both ends: a
// wrong token and another protocol version are refused first, and both the
// daemon (its log) and the worker (its stderr, its exit) say why; a silent
// peer (no FIN) is dropped after the heartbeat timeout on either side; an
// artifact upload cut by a dropped connection goes on after the reconnect
// from the byte where it stopped, and the run ends done with the file's
// sha256. A worker for one run (--run ID, as Slurm jobs start it) takes that
// run only and exits; one for a run that is not queued is refused.
import test from 'node:test';
import assert from 'node:assert';
import crypto from 'node:crypto';
import net from 'node:net';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { Daemon, Sse, tinySpec, waitFor, BIN, SHARED } from './daemon.js';
import { PROTO_VERSION, frame, u64, str, bytes, ProtoWorker, Reader } from './proto.js';

const sha = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

// A spinq-worker process; .log collects its stderr, .exited its exit.
function startWorker(port, args) {
  const p = spawn(BIN('spinq-worker'), ['--connect', `127.0.0.1:${port}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  p.log = '';
  p.stdout.on('data', (d) => { p.log += d; });
  p.stderr.on('data', (d) => { p.log += d; });
  p.exited = new Promise((resolve) => p.on('exit', (code) => resolve(code)));
  return p;
}

// A fake daemon on a free port: onHello(socket, helloFrame) answers.
async function fakeDaemon(onHello) {
  const server = net.createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('error', () => {});
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 12 && buf.length >= 12 + buf.readUInt32BE(8)) onHello(s, buf);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

test('a wrong token is refused, and both sides say why', async (t) => {
  const d = new Daemon({ workers: 0 });
  t.after(() => d.cleanup());
  d.token('w', 'worker'); // tokens before the start: the daemon decides on auth then
  const admin = d.token('a', 'admin');
  await d.start();
  const w = startWorker(d.workerPort, ['--token', 'not-a-token', '--name', 'badtok']);
  t.after(() => w.kill('SIGKILL'));
  assert.strictEqual(await w.exited, 1, 'a refused worker exits: a bad token will not get better');
  assert.match(w.log, /the daemon refused this worker: .*token/);
  await waitFor(async () => /worker badtok \(127\.0\.0\.1:\d+\) refused: .*token/.test(d.log), 5000, 'the daemon log');
  assert.strictEqual((await d.req('GET', '/api/health', null, admin)).json.workers.connected, 0);
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log.slice(-3000));
});

test('another protocol version is refused, and both sides say why', async (t) => {
  // a worker of version 3 at this daemon: the REJECT names both versions
  const d = await new Daemon({ workers: 0 }).start();
  t.after(() => d.cleanup());
  const pw = new ProtoWorker(d.workerPort, 'future', { version: PROTO_VERSION + 1 });
  const reason = new Reader(await pw.next(3)).str();
  assert.match(reason, new RegExp(`protocol version ${PROTO_VERSION + 1}, the daemon speaks ${PROTO_VERSION}`));
  await waitFor(async () => /worker \? \(127\.0\.0\.1:\d+\) refused: protocol version 3, the daemon speaks 2/.test(d.log),
    5000, 'the daemon log');
  pw.sock.destroy();
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log.slice(-3000));

  // this worker at a daemon of version 3: it reads the REJECT (whose header
  // names version 3) and says why before it exits
  const fake = await fakeDaemon((s, hello) => {
    const seen = hello.readUInt16BE(4);
    s.end(frame(3, str(`protocol version ${seen}, the daemon speaks 3`), { version: 3 }));
  });
  t.after(() => fake.close());
  const w = startWorker(fake.address().port, ['--name', 'old']);
  t.after(() => w.kill('SIGKILL'));
  assert.strictEqual(await w.exited, 1);
  assert.match(w.log, /the daemon refused this worker: protocol version 2, the daemon speaks 3/);
});

test('heartbeats: a silent worker is dropped by the daemon, a silent daemon by the worker', async (t) => {
  const d = await new Daemon({ workers: 0, args: ['--heartbeat-timeout', '2'] }).start();
  t.after(() => d.cleanup());
  const id = (await d.req('POST', '/api/runs', tinySpec())).json.id;
  const pw = new ProtoWorker(d.workerPort, 'mute'); // never answers a ping, never closes
  await pw.next(2);
  const job = await pw.job();
  assert.strictEqual(job.runId, id);
  const t0 = Date.now();
  const run = await waitFor(async () => { const r = await d.run(id); return r.status === 'queued' ? r : null; },
    6000, 'the run back in the queue');
  const took = Date.now() - t0;
  assert.ok(took >= 1500 && took <= 4500, `dropped after ${took} ms (timeout 2 s, checked every second)`);
  assert.match(run.reason, /worker mute went away \(no heartbeat for 2 s\)/);
  assert.match(d.log, /worker mute \(127\.0\.0\.1:\d+\): silent for/);
  pw.sock.destroy();
  await d.stop();

  // a daemon that welcomes (heartbeat 1.5 s) and then says nothing
  const fake = await fakeDaemon((s) => {
    const welcome = Buffer.alloc(12);
    welcome.writeBigUInt64BE(1n, 0);
    welcome.writeUInt32BE(1500, 8);
    s.write(frame(2, welcome));
  });
  t.after(() => fake.close());
  const w = startWorker(fake.address().port, ['--name', 'listener']);
  t.after(() => w.kill('SIGKILL'));
  await waitFor(async () => /nothing from the daemon for 1\.5 s \(heartbeat\)/.test(w.log), 6000, 'the worker to notice');
  await waitFor(async () => /reconnecting/.test(w.log), 3000, 'the worker to reconnect');
});

test('an artifact upload cut by a dropped connection goes on after the reconnect', async (t) => {
  const d = await new Daemon({ workers: 0 }).start();
  t.after(() => d.cleanup());
  const id = (await d.req('POST', '/api/runs', tinySpec())).json.id;
  const sse = new Sse(d.port, `/api/runs/${id}/events`);
  const file = crypto.randomBytes(300000);
  const cut = 120000;
  const chunk = (off, n, final) => [u64(id), str('model.spq'), u64(off), u64(file.length),
    bytes(file.subarray(off, off + n)), Buffer.from([final ? 1 : 0]), str(final ? sha(file) : '')];

  const w1 = new ProtoWorker(d.workerPort, 'host-a:1');
  await w1.next(2);
  const job = await w1.job();
  assert.strictEqual(job.runId, id);
  w1.send(14, ...chunk(0, cut, false));
  await waitFor(async () => (await d.run(id)).status === 'running', 2000, 'running');
  await new Promise((r) => setTimeout(r, 300)); // the chunk is written
  w1.sock.destroy(); // the connection drops in the middle of the upload
  await waitFor(async () => (await d.run(id)).status === 'queued', 10000, 'the run back in the queue');

  // the same worker comes back holding the run's finished outputs
  const w2 = new ProtoWorker(d.workerPort, 'host-a:1', { heldRun: id, heldAttempt: job.attempt });
  await w2.next(2);
  const r = new Reader(await w2.next(16)); // RESUMED
  assert.strictEqual(r.u64(), id);
  assert.strictEqual(r.u8(), 1, 'the daemon takes the outputs back');
  r.str();
  const have = JSON.parse(r.str());
  assert.deepStrictEqual(have, { 'model.spq': { size: cut } }, 'the daemon kept what arrived');
  w2.send(14, ...chunk(cut, file.length - cut, true));
  w2.send(15, u64(id), Buffer.from([0]), str(''));
  const run = await d.waitRun(id, ['done', 'failed'], 10000);
  assert.strictEqual(run.status, 'done', run.reason);
  assert.strictEqual(run.attempts, 1, 'delivering is not another attempt');
  const list = (await d.req('GET', `/api/runs/${id}/artifacts`)).json.artifacts;
  assert.deepStrictEqual(list.map((a) => [a.name, a.size, a.sha256]), [['model.spq', file.length, sha(file)]]);
  const dl = await d.req('GET', `/api/runs/${id}/artifacts/model.spq`);
  assert.ok(dl.body.equals(file), 'the file downloads whole');
  assert.match(d.log, /artifact model\.spq goes on from byte 120000/);
  assert.ok(sse.events.some((e) => e.event === 'status' && e.data.delivering), 'the run history shows the delivery');

  // a worker holding a run that is not waiting for it is told to drop it
  const w3 = new ProtoWorker(d.workerPort, 'host-b:2', { heldRun: id, heldAttempt: 1 });
  await w3.next(2);
  const r3 = new Reader(await w3.next(16));
  assert.strictEqual(r3.u64(), id);
  assert.strictEqual(r3.u8(), 0);
  assert.match(r3.str(), new RegExp(`run ${id} is done`));
  sse.close();
  for (const w of [w2, w3]) w.sock.destroy();
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log.slice(-3000));
});

test('spinq-worker --run ID takes that run only and exits; a run that is not queued is refused', async (t) => {
  // what a Slurm job's worker does (spinqd_slurm.test.js), here with the local executor and no Slurm
  const d = await new Daemon({ workers: 0 }).start();
  t.after(() => d.cleanup());
  const first = (await d.req('POST', '/api/runs', tinySpec())).json.id;
  const second = (await d.req('POST', '/api/runs', tinySpec())).json.id;
  const w = startWorker(d.workerPort, ['--run', String(second), '--name', 'one-run',
    '--models-dir', path.join(SHARED, 'models'), '--datasets-dir', path.join(SHARED, 'data')]);
  t.after(() => w.kill('SIGKILL'));
  assert.strictEqual(await w.exited, 0, w.log);
  assert.strictEqual((await d.run(second)).status, 'done', 'its run');
  assert.strictEqual((await d.run(first)).status, 'queued', 'not the older one, which a plain worker would take');
  const again = startWorker(d.workerPort, ['--run', String(second), '--name', 'late']);
  t.after(() => again.kill('SIGKILL'));
  assert.strictEqual(await again.exited, 1);
  assert.match(again.log, new RegExp(`refused this worker: run ${second} is done`));
  const none = startWorker(d.workerPort, ['--run', '999', '--name', 'nothing']);
  t.after(() => none.kill('SIGKILL'));
  assert.strictEqual(await none.exited, 1);
  assert.match(none.log, /run 999 does not exist/);
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log.slice(-3000));
});
