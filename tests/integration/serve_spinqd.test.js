// serve_spinqd.test.js - serving a finished run's model through spinqd: a
// member starts and stops it, a viewer may complete but not start or stop,
// the official OpenAI client and curl -N go through the proxy with a token,
// streams arrive as they are made, /api/serving lists what is served.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import OpenAI from 'openai';
import { Daemon, tinySpec, waitFor } from './daemon.js';

const STORY =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a ' +
  'big, red ball. She wanted to play with it, but it was too high.';

test('a finished run is served, completed through the proxy with tokens and roles, and stopped', async (t) => {
  const d = await new Daemon({ workers: 1 }).start();
  t.after(() => d.cleanup());
  const member = d.token('alice', 'member');
  const viewer = d.token('val', 'viewer');
  await waitFor(async () => (await d.req('GET', '/api/runs')).status === 401, 5000, 'auth to switch on');

  const fp = (await d.req('POST', '/api/runs', tinySpec({ name: 'fp' }), member)).json;
  const packed = (await d.req('POST', '/api/runs',
    tinySpec({ name: 'w4a8', quant: { w_bits: 4, a_bits: 8, kv_bits: 8 }, weights: { method: 'rtn' } }), member)).json;
  for (const id of [fp.id, packed.id]) {
    await waitFor(async () => {
      const r = (await d.req('GET', `/api/runs/${id}`, undefined, member)).json;
      if (r.status === 'failed') throw new Error(`run ${id} failed: ${JSON.stringify(r)}`);
      return r.status === 'done';
    }, 120000, `run ${id} done`);
  }
  const arts = (await d.req('GET', `/api/runs/${packed.id}/artifacts`, undefined, member)).json.artifacts.map((a) => a.name);
  assert.ok(arts.includes('model.spq'), arts.join());

  const base = `http://127.0.0.1:${d.port}`;
  const ready = (id) => waitFor(async () => {
    const r = await d.req('GET', `/api/runs/${id}/serve`, undefined, viewer);
    assert.equal(r.status, 200, r.body);
    assert.notEqual(r.json.state, 'failed');
    return r.json.state === 'ready';
  }, 60000, `run ${id} serving`);

  await t.test('a viewer cannot start serving; a member can', async () => {
    assert.equal((await d.req('POST', `/api/runs/${packed.id}/serve`, undefined, viewer)).status, 403);
    assert.equal((await d.req('POST', `/api/runs/${packed.id}/serve`)).status, 401);
    const r = await d.req('POST', `/api/runs/${packed.id}/serve`, undefined, member);
    assert.equal(r.status, 202, r.body);
    assert.equal(r.json.kind, 'packed');
    const f = await d.req('POST', `/api/runs/${fp.id}/serve`, undefined, member);
    assert.equal(f.status, 202, f.body);
    assert.equal(f.json.kind, 'fp');
    await Promise.all([ready(packed.id), ready(fp.id)]);
    const list = (await d.req('GET', '/api/serving', undefined, viewer)).json.serving;
    assert.deepEqual(list.map((s) => s.run_id).sort(), [fp.id, packed.id].sort());
  });

  await t.test('the OpenAI client through the proxy with a viewer token: plain and streaming', async () => {
    const fpc = new OpenAI({ baseURL: `${base}/api/runs/${fp.id}/v1`, apiKey: viewer });
    const c = await fpc.completions.create({ model: `run-${fp.id}`, prompt: '', max_tokens: 200, temperature: 0 });
    assert.ok(c.choices[0].text.startsWith(STORY), c.choices[0].text);
    const pc = new OpenAI({ baseURL: `${base}/api/runs/${packed.id}/v1`, apiKey: viewer });
    const models = await pc.models.list();
    assert.equal(models.data[0].id, `run-${packed.id}`);
    assert.equal(models.data[0].meta.format, 'packed');
    assert.match(models.data[0].meta.sha256, /^[0-9a-f]{64}$/);
    const plain = await pc.completions.create({ model: 'm', prompt: 'Once upon a time', max_tokens: 40, temperature: 0 });
    const stream = await pc.completions.create({ model: 'm', prompt: 'Once upon a time', max_tokens: 40, temperature: 0, stream: true });
    let text = '', usage = null;
    for await (const chunk of stream) {
      for (const ch of chunk.choices) text += ch.text;
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, plain.choices[0].text);
    assert.equal(usage.completion_tokens, plain.usage.completion_tokens);
    // the worker's errors come through in its shape and status
    await assert.rejects(pc.completions.create({ model: 'm', prompt: 'x', n: 1000 }), (e) => e.status === 400 && /n must be/.test(e.message));
    await assert.rejects(pc.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
      (e) => e.status === 400 && /no chat template/.test(e.message));
    const bad = new OpenAI({ baseURL: `${base}/api/runs/${packed.id}/v1`, apiKey: 'not-a-token' });
    await assert.rejects(bad.completions.create({ model: 'm', prompt: 'x' }), (e) => e.status === 401);
  });

  await t.test('curl -N through the proxy: a stream of events ending in [DONE]; llama.cpp /completion', async () => {
    const r = spawnSync('curl', ['-sN', '-H', `Authorization: Bearer ${viewer}`, `${base}/api/runs/${fp.id}/v1/completions`,
      '-d', JSON.stringify({ prompt: 'Once', max_tokens: 6, temperature: 0, stream: true })], { encoding: 'utf8' });
    const ev = r.stdout.split('\n\n').filter(Boolean);
    assert.equal(ev.at(-1), 'data: [DONE]');
    assert.equal(ev.length, 6 + 2);
    const l = await d.req('POST', `/api/runs/${fp.id}/completion`, { prompt: 'Once upon a time', n_predict: 5, temperature: 0 }, viewer);
    assert.equal(l.status, 200, l.body);
    assert.equal(l.json.content, ', there was a little');
  });

  await t.test('a stream passes through unbuffered, and a client that leaves frees its slot', async () => {
    const ac = new AbortController();
    const res = await fetch(`${base}/api/runs/${fp.id}/v1/completions`, {
      method: 'POST', signal: ac.signal, headers: { Authorization: `Bearer ${viewer}` },
      body: JSON.stringify({ prompt: 'Once', max_tokens: 500, ignore_eos: true, stream: true }),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const first = await res.body.getReader().read();
    assert.match(Buffer.from(first.value).toString(), /^data: \{/);
    // the first event is here while the worker is still generating
    const slots = (await d.req('GET', `/api/runs/${fp.id}/slots`, undefined, viewer)).json;
    assert.ok(slots.some((s) => s.is_processing && s.n_decoded < 500), JSON.stringify(slots));
    ac.abort();
    await waitFor(async () => (await d.req('GET', `/api/runs/${fp.id}/slots`, undefined, viewer)).json.every((s) => !s.is_processing),
      30000, 'the slot to be freed');
  });

  await t.test('a viewer cannot stop serving; a member can, and the proxy then says so', async () => {
    assert.equal((await d.req('DELETE', `/api/runs/${packed.id}/serve`, undefined, viewer)).status, 403);
    for (const id of [packed.id, fp.id]) assert.equal((await d.req('DELETE', `/api/runs/${id}/serve`, undefined, member)).status, 200);
    const r = await d.req('POST', `/api/runs/${packed.id}/v1/completions`, { prompt: 'x' }, viewer);
    assert.equal(r.status, 404);
    assert.match(r.json.error.message, /not being served/);
    assert.deepEqual((await d.req('GET', '/api/serving', undefined, viewer)).json.serving, []);
  });

  await t.test('SIGTERM while serving: spinqd stops its serving worker and exits cleanly', async () => {
    const r = await d.req('POST', `/api/runs/${fp.id}/serve`, undefined, member);
    assert.equal(r.status, 202, r.body);
    await ready(fp.id);
    const { code, signal } = await d.stop();
    assert.equal(signal, null);
    assert.equal(code, 0, d.log.slice(-3000));
    assert.throws(() => process.kill(r.json.pid, 0), /ESRCH/);
  });
});
