// spinqd_auth.test.js - tokens and roles: viewers read, members create and
// cancel their own runs, admins anything; worker tokens only connect remote
// workers; a daemon refuses to listen beyond loopback without auth.
import test from 'node:test';
import assert from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Daemon, tinySpec, waitFor, freePort, BIN, SHARED } from './daemon.js';

test('roles decide who may read, create and cancel', async (t) => {
  const d = await new Daemon({ workers: 0 }).start();
  t.after(() => d.cleanup());
  // tokens created beside the running daemon take effect at once
  const admin = d.token('root', 'admin');
  const alice = d.token('alice', 'member');
  const bob = d.token('bob', 'member');
  const viewer = d.token('val', 'viewer');
  const worker = d.token('w1', 'worker');
  await waitFor(async () => (await d.req('GET', '/api/runs')).status === 401, 5000, 'auth to switch on');

  await t.test('tokens are stored hashed and shown once', () => {
    const r = spawnSync(BIN('spinqd'), ['token', 'list', '--data-dir', d.dataDir], { encoding: 'utf8' });
    assert.strictEqual(r.status, 0, r.stderr);
    assert.ok(!r.stdout.includes(alice.slice(4)), 'the token itself is not in the listing');
    const names = JSON.parse(r.stdout).map((x) => `${x.name}:${x.role}`);
    assert.deepStrictEqual(names, ['root:admin', 'alice:member', 'bob:member', 'val:viewer', 'w1:worker']);
    const db = fs.readFileSync(path.join(d.dataDir, 'spinq.db'));
    assert.ok(!db.includes(Buffer.from(alice)), 'the store holds no token in clear');
    const dup = spawnSync(BIN('spinqd'), ['token', 'create', 'alice', '--role', 'viewer', '--data-dir', d.dataDir],
      { encoding: 'utf8' });
    assert.notStrictEqual(dup.status, 0);
    const badRole = spawnSync(BIN('spinqd'), ['token', 'create', 'eve', '--role', 'god', '--data-dir', d.dataDir],
      { encoding: 'utf8' });
    assert.strictEqual(badRole.status, 2);
  });

  let aliceRun, bobRun;
  await t.test('a viewer reads but cannot create or cancel', async () => {
    assert.strictEqual((await d.req('GET', '/api/runs', undefined, viewer)).status, 200);
    assert.deepStrictEqual((await d.req('GET', '/api/whoami', undefined, viewer)).json, { name: 'val', role: 'viewer' });
    const c = await d.req('POST', '/api/runs', tinySpec(), viewer);
    assert.strictEqual(c.status, 403);
    assert.strictEqual(c.json.error.code, 'forbidden');
    aliceRun = (await d.req('POST', '/api/runs', tinySpec({ name: 'alice run' }), alice)).json;
    bobRun = (await d.req('POST', '/api/runs', tinySpec({ name: 'bob run' }), bob)).json;
    assert.strictEqual(aliceRun.owner, 'alice');
    assert.strictEqual(bobRun.owner, 'bob');
    assert.strictEqual((await d.req('POST', `/api/runs/${aliceRun.id}/cancel`, undefined, viewer)).status, 403);
    assert.strictEqual((await d.req('DELETE', `/api/runs/${aliceRun.id}`, undefined, viewer)).status, 403);
    assert.strictEqual((await d.req('POST', '/api/sweeps', { base: tinySpec(), grid: { seed: [1] } }, viewer)).status, 403);
  });

  await t.test("a member cannot cancel or delete another member's run, but their own", async () => {
    const x = await d.req('POST', `/api/runs/${aliceRun.id}/cancel`, undefined, bob);
    assert.strictEqual(x.status, 403);
    assert.match(x.json.error.message, /belongs to 'alice'/);
    assert.strictEqual((await d.req('DELETE', `/api/runs/${aliceRun.id}`, undefined, bob)).status, 403);
    assert.strictEqual((await d.run(aliceRun.id)).status, undefined, 'reads need a token too');
    const own = await d.req('POST', `/api/runs/${aliceRun.id}/cancel`, undefined, alice);
    assert.strictEqual(own.status, 200);
    assert.strictEqual(own.json.status, 'canceled');
  });

  await t.test('an admin may cancel anyone\'s run', async () => {
    const r = await d.req('POST', `/api/runs/${bobRun.id}/cancel`, undefined, admin);
    assert.strictEqual(r.status, 200);
  });

  await t.test('event streams take the token as ?access_token= (EventSource cannot set headers)', async () => {
    const { Sse } = await import('./daemon.js');
    const ok = new Sse(d.port, `/api/events?access_token=${viewer}`);
    await ok.ready;
    assert.strictEqual(ok.status, 200);
    ok.close();
    const bad = await d.req('GET', `/api/events?access_token=${viewer.slice(0, -2)}xx`);
    assert.strictEqual(bad.status, 401);
    const other = await d.req('GET', `/api/runs?access_token=${viewer}`);
    assert.strictEqual(other.status, 401, 'only the streams take a token in the URL');
  });

  await t.test('a worker token cannot use the API', async () => {
    const r = await d.req('GET', '/api/runs', undefined, worker);
    assert.strictEqual(r.status, 401);
    assert.strictEqual(r.json.error.field, 'Authorization');
  });

  await t.test('remote workers need a worker token; with one they run jobs', async () => {
    const bad = spawnSync(BIN('spinq-worker'), ['--connect', `127.0.0.1:${d.workerPort}`, '--token', alice,
      '--models-dir', path.join(SHARED, 'models')], { encoding: 'utf8', timeout: 20000 });
    assert.strictEqual(bad.status, 1);
    assert.match(bad.stderr, /refused this worker: token 'alice' has role member/);
    const shared = SHARED;
    const w = spawn(BIN('spinq-worker'), ['--connect', `127.0.0.1:${d.workerPort}`, '--token', worker, '--name', 'far',
      '--models-dir', path.join(shared, 'models'), '--datasets-dir', path.join(shared, 'data')], { stdio: 'ignore' });
    t.after(() => w.kill('SIGKILL'));
    await waitFor(async () => (await d.req('GET', '/api/workers', undefined, admin)).json.workers
      .find((x) => x.name === 'far' && x.kind === 'remote' && x.state === 'idle'), 20000, 'the remote worker');
    const r = await d.req('POST', '/api/runs', tinySpec(), alice);
    const run = await waitFor(async () => {
      const x = (await d.req('GET', `/api/runs/${r.json.id}`, undefined, alice)).json;
      return ['done', 'failed'].includes(x.status) ? x : null;
    }, 60000, 'the run on the remote worker');
    assert.strictEqual(run.status, 'done', run.reason);
    const arts = (await d.req('GET', `/api/runs/${run.id}/artifacts`, undefined, viewer)).json.artifacts;
    assert.strictEqual(arts[0].name, 'results.json', 'artifacts travel over the worker connection');
    w.kill('SIGKILL');
  });

  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log.slice(-3000));
});

test('listening beyond loopback needs auth configured', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spinqd-bind-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const r = spawnSync(BIN('spinqd'), ['--data-dir', dir, '--listen', `0.0.0.0:${port}`, '--workers', '0',
    '--worker-listen', ''], { encoding: 'utf8', timeout: 20000 });
  assert.strictEqual(r.status, 2);
  assert.match(r.stderr, /refusing to listen on 0\.0\.0\.0:\d+ \(listen\) without authentication/);
  const w = spawnSync(BIN('spinqd'), ['--data-dir', dir, '--worker-listen', `0.0.0.0:${port}`, '--workers', '0',
    '--listen', `127.0.0.1:${port}`], { encoding: 'utf8', timeout: 20000 });
  assert.strictEqual(w.status, 2);
  assert.match(w.stderr, /\(worker_listen\) without authentication/);

  // with a token the same daemon starts, and every request needs one
  const d = new Daemon({ workers: 0, dataDir: dir });
  const token = d.token('ops', 'admin');
  d.port = port;
  d.workerPort = await freePort();
  d.args = () => ['--data-dir', dir, '--listen', `0.0.0.0:${port}`, '--worker-listen', `127.0.0.1:${d.workerPort}`,
    '--workers', '0'];
  await d.start();
  assert.strictEqual((await d.req('GET', '/api/runs')).status, 401);
  assert.strictEqual((await d.req('GET', '/api/runs', undefined, token)).status, 200);
  assert.strictEqual((await d.req('GET', '/api/health')).status, 200, 'health stays public');
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log.slice(-2000));
});

test('auth = required demands tokens even on loopback', async (t) => {
  const d = await new Daemon({ workers: 0, args: ['--auth', 'required'] }).start();
  t.after(() => d.cleanup());
  assert.match(d.log, /auth is required but no token exists/);
  const r = await d.req('GET', '/api/runs');
  assert.strictEqual(r.status, 401);
  const { code } = await d.stop();
  assert.strictEqual(code, 0);
});
