// spinqd_multihost.test.js - spinqd and two remote workers on three
// "hosts": network namespaces made here (ip netns, a veth pair from the
// daemon's namespace to each worker's, addresses only inside them; root
// needed, skipped otherwise). Each worker starts with EMPTY models and
// datasets directories, so everything it reads comes from the daemon over
// the worker connection. A sweep of 4 short SpinQuant jobs on stories260K
// spreads over both workers; one worker's link goes down (no FIN) while it
// learns, the daemon notices by the heartbeat, and its run resumes on the
// other worker from the last checkpoint. Every artifact downloads from the
// daemon with the sha256 the worker that made it computed. The namespaces
// go at the end whatever happens (after, exit, SIGINT/SIGTERM).
//
// The test cannot reach the daemon's loopback inside its namespace: a
// small forwarder started in that namespace carries HTTP from a Unix
// socket in the test's temp dir (a path, not network-namespaced) to it.
import test from 'node:test';
import assert from 'node:assert';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { BIN, SHARED, waitFor } from './daemon.js';

const sha = (buf) => crypto.createHash('sha256').update(buf).digest('hex');
const HEARTBEAT = 3; // seconds: the daemon's --heartbeat-timeout here

const id = process.pid;
const NS = { d: `spq${id}d`, a: `spq${id}a`, b: `spq${id}b` };
const LINK = { a: { d: `q${id}da`, w: `q${id}wa`, net: '10.231.1' }, b: { d: `q${id}db`, w: `q${id}wb`, net: '10.231.2' } };

function sh(args, { check = true } = {}) {
  const r = spawnSync(args[0], args.slice(1), { encoding: 'utf8' });
  if (check && r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr || r.error}`);
  return r;
}

const procs = [];
function cleanup() {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const ns of Object.values(NS)) sh(['ip', 'netns', 'del', ns], { check: false }); // its veth ends go with it
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { cleanup(); process.exit(130); });

function makeHosts() {
  for (const ns of Object.values(NS)) {
    sh(['ip', 'netns', 'add', ns]);
    sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  }
  for (const w of ['a', 'b']) {
    const l = LINK[w];
    sh(['ip', '-n', NS.d, 'link', 'add', l.d, 'type', 'veth', 'peer', 'name', l.w, 'netns', NS[w]]);
    sh(['ip', '-n', NS.d, 'addr', 'add', `${l.net}.1/24`, 'dev', l.d]);
    sh(['ip', '-n', NS[w], 'addr', 'add', `${l.net}.2/24`, 'dev', l.w]);
    sh(['ip', '-n', NS.d, 'link', 'set', l.d, 'up']);
    sh(['ip', '-n', NS[w], 'link', 'set', l.w, 'up']);
  }
}

// A process in namespace ns; .log collects its output.
function inNs(ns, cmd, args, opts = {}) {
  const p = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  p.log = '';
  p.stdout.on('data', (d) => { p.log += d; });
  p.stderr.on('data', (d) => { p.log += d; });
  procs.push(p);
  return p;
}

// HTTP to the daemon through the forwarder's socket.
function req(sock, token, method, p, body) {
  return new Promise((resolve, reject) => {
    const data = body ? Buffer.from(JSON.stringify(body)) : null;
    const headers = { Authorization: `Bearer ${token}` };
    if (data) Object.assign(headers, { 'Content-Type': 'application/json', 'Content-Length': data.length });
    const r = http.request({ socketPath: sock, method, path: p, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        let json = null;
        try { json = JSON.parse(buf.toString()); } catch { json = null; }
        resolve({ status: res.statusCode, body: buf, json });
      });
    });
    r.on('error', reject);
    if (data) r.write(data);
    r.end();
  });
}

// A finished run's whole event stream (it ends after the last event).
async function history(sock, token, runId) {
  const text = (await req(sock, token, 'GET', `/api/runs/${runId}/events`)).body.toString();
  return text.split('\n\n').map((block) => {
    const ev = {};
    for (const line of block.split('\n')) {
      const m = /^(\w+): ?(.*)$/.exec(line);
      if (m) ev[m[1]] = m[2];
    }
    if (ev.data) ev.data = JSON.parse(ev.data);
    return ev;
  }).filter((e) => e.event);
}

// run id -> {artifact name -> sha256} from a worker's log lines
function workerShas(log) {
  const out = {};
  let run = null;
  for (const line of log.split('\n')) {
    let m = /: run (\d+) \(attempt/.exec(line);
    if (m) run = Number(m[1]);
    m = /: artifact (\S+): \d+ bytes, sha256 ([0-9a-f]{64})/.exec(line);
    if (m && run !== null) (out[run] ||= {})[m[1]] = m[2];
  }
  return out;
}

const isRoot = process.getuid && process.getuid() === 0 && sh(['ip', 'netns', 'list'], { check: false }).status === 0;

test('a sweep over two workers on two hosts: fetched inputs, a link cut mid-learning, artifacts home', { skip: !isRoot && 'needs root for ip netns' },
  async (t) => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'spinq-multihost-'));
    const logs = () => procs.map((p) => `--- ${p.spawnargs.slice(3, 5).join(' ')}\n${p.log.slice(-4000)}`).join('\n');
    try {
      await scenario(t, tmp);
    } catch (e) {
      e.message += `\n${logs()}`;
      throw e;
    }
  });

async function scenario(t, tmp) {
  {
    t.after(() => { cleanup(); fs.rmSync(tmp, { recursive: true, force: true }); });
    makeHosts();
    const dataDir = path.join(tmp, 'daemon');
    const token = (name, role) => sh([BIN('spinqd'), 'token', 'create', name, '--role', role, '--data-dir', dataDir])
      .stdout.trim();
    const workerToken = token('hosts', 'worker');
    const admin = token('admin', 'admin');

    const daemon = inNs(NS.d, BIN('spinqd'), ['--data-dir', dataDir, '--listen', '127.0.0.1:7070',
      '--worker-listen', '0.0.0.0:7071', '--workers', '0', '--heartbeat-timeout', String(HEARTBEAT),
      '--models-dir', path.join(SHARED, 'models'), '--datasets-dir', path.join(SHARED, 'data')]);
    const sock = path.join(tmp, 'http.sock');
    inNs(NS.d, process.execPath, ['-e', `const net = require('net');
      net.createServer((c) => { const u = net.connect(7070, '127.0.0.1'); c.pipe(u); u.pipe(c);
        c.on('error', () => u.destroy()); u.on('error', () => c.destroy()); }).listen(${JSON.stringify(sock)});`]);
    await waitFor(async () => {
      if (daemon.exitCode !== null) throw new Error(`spinqd exited:\n${daemon.log}`);
      try { return (await req(sock, admin, 'GET', '/api/health')).status === 200; } catch { return false; }
    }, 20000, 'spinqd in its namespace');

    const workers = {};
    for (const w of ['a', 'b']) {
      const models = path.join(tmp, `models-${w}`), datasets = path.join(tmp, `data-${w}`);
      fs.mkdirSync(models);
      fs.mkdirSync(datasets);
      workers[w] = inNs(NS[w], BIN('spinq-worker'), ['--connect', `${LINK[w].net}.1:7071`, '--token', workerToken,
        '--models-dir', models, '--datasets-dir', datasets, '--name', `host-${w}`],
      { cwd: tmp, env: { ...process.env, TMPDIR: tmp } });
      workers[w].models = models;
    }
    await waitFor(async () => (await req(sock, admin, 'GET', '/api/health')).json.workers.connected === 2, 30000,
      'both workers to connect');

    // 4 short SpinQuant runs; learning long enough to be cut in the middle
    const base = {
      model: 'stories260K', quant: { w_bits: 4, a_bits: 4, kv_bits: 4 }, weights: { method: 'rtn' },
      rotation: { mode: 'spinquant', train: { steps: 24, batch: 1, seqlen: 32, checkpoint_every: 4, w_bits: 4 } },
      eval: { ppl: [{ data: 'tinystories/test.txt', seqlen: 64 }], limit: 2, kld: false, tasks: [] },
    };
    const sw = await req(sock, admin, 'POST', '/api/sweeps', { name: 'hosts', base, grid: { seed: [1, 2, 3, 4] } });
    assert.strictEqual(sw.status, 201, sw.body.toString());
    const runIds = sw.json.runs; // their ids

    // a run learning on host-a with a checkpoint stored: cut host-a's link
    const victim = await waitFor(async () => {
      for (const rid of runIds) {
        const r = (await req(sock, admin, 'GET', `/api/runs/${rid}`)).json;
        if (r.status !== 'running' || r.worker_name !== 'host-a' || r.stage !== 'learn') continue;
        const ck = (await req(sock, admin, 'GET', `/api/runs/${rid}/checkpoints`)).json.checkpoints;
        if (ck.length) return rid;
      }
      return null;
    }, 90000, 'a run learning on host-a with a checkpoint');
    sh(['ip', '-n', NS.a, 'link', 'set', LINK.a.w, 'down']);
    const cutAt = Date.now();
    const requeued = await waitFor(async () => {
      const r = (await req(sock, admin, 'GET', `/api/runs/${victim}`)).json;
      return r.status !== 'running' || r.worker_name !== 'host-a' ? r : null;
    }, (HEARTBEAT + 5) * 1000, 'the daemon to notice the silent host');
    const noticed = (Date.now() - cutAt) / 1000;
    assert.ok(noticed <= HEARTBEAT + 2, `noticed after ${noticed} s (heartbeat ${HEARTBEAT} s)`);
    // the checkpoint the resumed attempt must start from: the last one stored before the cut
    const lastStep = Math.max(...(await req(sock, admin, 'GET', `/api/runs/${victim}/checkpoints`)).json.checkpoints
      .map((c) => c.step));
    assert.ok(requeued.status === 'queued' || requeued.worker_name === 'host-b', JSON.stringify(requeued));

    const runs = await waitFor(async () => {
      const l = (await req(sock, admin, 'GET', `/api/runs?sweep=${sw.json.sweep.id}&limit=10`)).json.runs;
      return l.every((x) => ['done', 'failed', 'canceled'].includes(x.status)) ? l : null;
    }, 150000, 'every run of the sweep to finish');
    for (const x of runs) assert.strictEqual(x.status, 'done', `${x.name}: ${x.reason}`);

    // spread: both hosts ran points; the cut run finished on host-b from its checkpoint
    const started = new Set();
    for (const rid of runIds) {
      for (const e of await history(sock, admin, rid))
        if (e.event === 'status' && e.data.status === 'running' && e.data.worker_name) started.add(e.data.worker_name);
    }
    assert.deepStrictEqual([...started].sort(), ['host-a', 'host-b']);
    const ev = await history(sock, admin, victim);
    const second = ev.find((e) => e.event === 'status' && e.data.status === 'running' && e.data.attempt === 2);
    assert.ok(second, JSON.stringify(ev.filter((e) => e.event === 'status')));
    assert.strictEqual(second.data.worker_name, 'host-b');
    assert.strictEqual(second.data.resume_step, lastStep, 'resumed from the last checkpoint');
    assert.ok(ev.some((e) => e.event === 'status' && /host-a went away \(no heartbeat/.test(e.data.reason || '')));
    assert.match(workers.a.log, /nothing from the daemon for 3\.0 s \(heartbeat\)/);

    // the inputs came over the connection, into the empty directories
    for (const w of ['a', 'b']) {
      assert.match(workers[w].log, /fetch stories260K\/stories260K\.bin \(\d+ bytes/);
      const got = fs.readFileSync(path.join(workers[w].models, 'stories260K', 'stories260K.bin'));
      assert.ok(got.equals(fs.readFileSync(path.join(SHARED, 'models', 'stories260K', 'stories260K.bin'))));
    }
    // a second job on a host fetched nothing again (sha256 cache)
    const fetches = (log) => (log.match(/fetch stories260K\/stories260K\.bin/g) || []).length;
    assert.strictEqual(fetches(workers.b.log), 1, workers.b.log);

    // every artifact downloads from the daemon with the worker's sha256
    const made = { ...workerShas(workers.a.log) };
    for (const [rid, m] of Object.entries(workerShas(workers.b.log))) made[rid] = { ...made[rid], ...m };
    for (const rid of runIds) {
      const list = (await req(sock, admin, 'GET', `/api/runs/${rid}/artifacts`)).json.artifacts;
      assert.deepStrictEqual(list.map((a) => a.name).sort(), ['model.spq', 'results.json', 'rotation.safetensors']);
      for (const a of list) {
        const dl = await req(sock, admin, 'GET', `/api/runs/${rid}/artifacts/${a.name}`);
        assert.strictEqual(dl.status, 200);
        assert.strictEqual(sha(dl.body), a.sha256, `run ${rid} ${a.name}: the download has the recorded sha256`);
        assert.strictEqual(a.sha256, made[rid][a.name], `run ${rid} ${a.name}: the recorded sha256 is the worker's`);
      }
    }
    const dash = await req(sock, admin, 'GET', '/');
    assert.strictEqual(dash.status, 200, 'the dashboard is served');

    const exited = new Promise((resolve) => daemon.on('exit', (code) => resolve(code)));
    daemon.kill('SIGTERM'); // ip netns exec runs spinqd in its own place: this is spinqd
    assert.strictEqual(await exited, 0, daemon.log.slice(-3000));
  }
}
