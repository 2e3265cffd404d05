// spinqd_exclusive.test.js - things a daemon must own alone: its run ids
// (a deleted run's id is never handed out again), its port (a second daemon
// on it fails with "address in use" instead of sharing it), and its data
// dir (a second daemon exits naming the holder's pid, while the first one's
// run finishes once with one set of artifacts); the token commands still
// work beside it, and a drained shutdown reports its workers' clean exits.
import test from 'node:test';
import assert from 'node:assert';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Daemon, Sse, tinySpec, freePort, BIN, SHARED } from './daemon.js';

// A second spinqd with these flags, to its exit (it must not stay up).
function second(args) {
  const r = spawnSync(BIN('spinqd'), ['--models-dir', path.join(SHARED, 'models'),
    '--datasets-dir', path.join(SHARED, 'data'), '--workers', '0', ...args], { encoding: 'utf8', timeout: 30000 });
  return { code: r.status, signal: r.signal, out: `${r.stdout}${r.stderr}` };
}

// Every event of a finished run's stream (it ends by itself).
async function story(d, id) {
  const s = new Sse(d.port, `/api/runs/${id}/events`);
  await s.waitFor((e) => e.event === 'end', 20000, `the end of run ${id}'s stream`);
  s.close();
  return s.events;
}

test('a deleted run\'s id is never reused, and the new run\'s stream starts clean', async (t) => {
  const d = await new Daemon({ workers: 1 }).start();
  t.after(async () => { await d.stop(); d.cleanup(); });
  const a = (await d.req('POST', '/api/runs', tinySpec({ name: 'a' }))).json.id;
  const b = (await d.req('POST', '/api/runs', tinySpec({ name: 'b' }))).json.id;
  await d.waitRun(b, ['done']);
  assert.strictEqual((await d.req('DELETE', `/api/runs/${b}`)).status, 200);
  const c = (await d.req('POST', '/api/runs', tinySpec({ name: 'c' }))).json.id;
  assert.ok(c > b, `the new run got id ${c}; the deleted newest one had ${b}`);
  assert.strictEqual((await d.req('GET', `/api/runs/${b}`)).status, 404, 'an old link finds no run, not another one');
  await d.waitRun(c, ['done']);
  const evs = await story(d, c);
  assert.strictEqual(evs[0].event, 'run', 'the story starts with the run\'s creation');
  assert.strictEqual(evs[0].data.name, 'c');
  assert.ok(!evs.some((e) => e.event === 'deleted'), 'nothing of the deleted run comes with it');
  assert.ok(evs.every((e) => e.data.run_id === c));
  // and across a restart (the sequence lives in the store)
  await d.stop();
  await d.start();
  assert.strictEqual((await d.req('DELETE', `/api/runs/${c}`)).status, 200);
  const e = (await d.req('POST', '/api/runs', tinySpec({ name: 'e' }))).json.id;
  assert.ok(e > c && a < b, `after a restart: ${e} after ${c}`);
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log.slice(-2000));
});

test('a second daemon on the same port fails with "address in use"', async (t) => {
  const d = await new Daemon({ workers: 0 }).start();
  t.after(async () => { await d.stop(); d.cleanup(); });
  await d.req('POST', '/api/runs', tinySpec({ name: 'mine' }));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spinqd-second-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const r = second(['--data-dir', dir, '--listen', `127.0.0.1:${d.port}`, '--worker-listen', `127.0.0.1:${await freePort()}`]);
  assert.notStrictEqual(r.code, 0, r.out);
  assert.strictEqual(r.signal, null, r.out);
  assert.match(r.out, /cannot listen on 127\.0\.0\.1:\d+: address in use/);
  // every request still reaches the first daemon (the one with a run)
  for (let i = 0; i < 10; i++) {
    const h = await d.req('GET', '/api/health');
    assert.strictEqual(h.json.runs.queued, 1, `request ${i} went elsewhere: ${JSON.stringify(h.json)}`);
  }
});

test('a second daemon on the same data dir exits naming the holder; the run finishes once', async (t) => {
  const d = await new Daemon({ workers: 1 }).start();
  t.after(async () => { await d.stop(); d.cleanup(); });
  const id = (await d.req('POST', '/api/runs', tinySpec({
    name: 'long', weights: { method: 'rtn' }, quant: { w_bits: 4 }, eval: { limit: 150 },
  }))).json.id;
  await d.waitRun(id, ['running']);
  const r = second(['--data-dir', d.dataDir, '--listen', `127.0.0.1:${await freePort()}`,
    '--worker-listen', `127.0.0.1:${await freePort()}`, '--workers', '1']);
  assert.strictEqual(r.code, 1, r.out);
  assert.match(r.out, new RegExp(`data dir .* is in use by another spinqd \\(pid ${d.proc.pid}\\)`));
  assert.doesNotMatch(r.out, /queued again|listening/, 'it stopped before touching anything');
  assert.strictEqual((await d.run(id)).status, 'running', 'the second try came while the run ran');

  const run = await d.waitRun(id, ['done', 'failed'], 120000);
  assert.strictEqual(run.status, 'done', run.reason);
  assert.strictEqual(run.attempts, 1, 'one attempt: nobody ran it again');
  const evs = await story(d, id);
  const statuses = evs.filter((e) => e.event === 'status').map((e) => e.data.status);
  assert.strictEqual(evs.filter((e) => e.event === 'status' && e.data.status === 'running' && e.data.attempt).length, 1,
    'claimed once');
  assert.strictEqual(statuses.filter((s) => s === 'done').length, 1, 'finished once');
  assert.ok(!statuses.includes('queued'), `never re-queued: ${statuses.join(' ')}`);
  const arts = (await d.req('GET', `/api/runs/${id}/artifacts`)).json.artifacts.map((a) => a.name).sort();
  assert.ok(arts.includes('results.json'), arts.join(' '));
  assert.strictEqual(evs.filter((e) => e.event === 'artifact').length, arts.length, 'each artifact stored once');
  assert.deepStrictEqual(fs.readdirSync(path.join(d.dataDir, 'artifacts', String(id))).sort(), arts,
    'one set of files, nothing half-written');

  // the token commands touch only the tokens table: they work beside the daemon
  const token = d.token('beside', 'viewer');
  assert.strictEqual((await d.req('GET', `/api/runs/${id}`, undefined, token)).json.status, 'done');
  // a drained stop: the idle worker exits by itself and is reported so
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log.slice(-2000));
  assert.match(d.log, /local worker 0 \(pid \d+\) exited/);
  assert.doesNotMatch(d.log, /killed by signal/, d.log.slice(-2000));
});
