// spinqd_streams.test.js - the SSE streams byte for byte: keep-alive pings
// (every 0.2 s here) framed like everything else, with no NUL or other
// control byte; a run's stream that ends with `event: end` after the run's
// last event and closes, at once for a run that had already finished; and
// a real EventSource client (npm eventsource) cut off after a ping that
// reconnects with Last-Event-ID and receives every event exactly once.
import test from 'node:test';
import assert from 'node:assert';
import http from 'node:http';
import { EventSource } from 'eventsource';
import { Daemon, Sse, tinySpec, waitFor } from './daemon.js';

const PING = ': ping';
const learnSpec = (name, steps) => tinySpec({
  name, rotation: { mode: 'spinquant', train: { steps, batch: 1, seqlen: 32, checkpoint_every: 4, w_bits: 16 } },
  quant: { a_bits: 4, kv_bits: 4 }, eval: { limit: 2 },
});

// A raw stream: every byte as sent, and whether the server ended it.
function raw(port, p, headers = {}) {
  const s = { bytes: Buffer.alloc(0), ended: false };
  s.done = new Promise((resolve, reject) => {
    s.req = http.get({ host: '127.0.0.1', port, path: p, headers, agent: false }, (res) => {
      s.status = res.statusCode;
      res.on('data', (c) => { s.bytes = Buffer.concat([s.bytes, c]); });
      res.on('end', () => { s.ended = true; resolve(s); });
    });
    s.req.on('error', (e) => (s.closed ? resolve(s) : reject(e)));
  });
  s.text = () => s.bytes.toString('utf8');
  s.pings = () => s.text().split('\n\n').filter((b) => b === PING).length;
  s.close = () => { s.closed = true; s.req.destroy(); };
  return s;
}

// The complete blocks of a stream, each checked: no control byte but \n,
// every line a well-formed field, ids increasing. Returns the blocks.
function framing(bytes, what) {
  bytes.forEach((b, i) => assert.ok(b === 0x0a || (b >= 0x20 && b !== 0x7f),
    `${what}: byte ${b} at ${i}: ${JSON.stringify(bytes.subarray(Math.max(0, i - 20), i + 20).toString('latin1'))}`));
  const blocks = bytes.toString('utf8').split('\n\n');
  blocks.pop(); // what follows the last blank line is not complete yet
  let last = 0;
  const out = [];
  for (const b of blocks) {
    const lines = b.split('\n');
    if (lines.length === 1 && (lines[0] === PING || /^retry: \d+$/.test(lines[0]))) {
      out.push({ comment: lines[0] });
      continue;
    }
    const ev = {};
    for (const line of lines) {
      const m = /^(id|event|data): (.*)$/.exec(line);
      assert.ok(m, `${what}: a malformed line ${JSON.stringify(line)} in ${JSON.stringify(b)}`);
      assert.ok(!(m[1] in ev), `${what}: ${m[1]} twice in ${JSON.stringify(b)}`);
      ev[m[1]] = m[2];
    }
    assert.match(ev.event || '', /^[a-z]+$/, `${what}: ${JSON.stringify(b)}`);
    ev.data = JSON.parse(ev.data);
    if (ev.event === 'end') assert.strictEqual(ev.id, undefined, 'the end is not a stored event');
    else {
      assert.match(ev.id || '', /^\d+$/, `${what}: ${JSON.stringify(b)}`);
      ev.id = Number(ev.id);
      assert.ok(ev.id > last, `${what}: id ${ev.id} after ${last}`);
      last = ev.id;
    }
    out.push(ev);
  }
  return out;
}

test('event streams: framing across pings, runs that end, EventSource resuming exactly once', { timeout: 170000 }, async (t) => {
  const d = await new Daemon({ workers: 1, args: ['--sse-ping', '0.2'] }).start();
  t.after(async () => { await d.stop(); d.cleanup(); });

  await t.test('the bytes of both streams across several pings', async () => {
    const global = raw(d.port, '/api/events');
    const id = (await d.req('POST', '/api/runs', learnSpec('framed', 12))).json.id;
    const run = raw(d.port, `/api/runs/${id}/events`);
    await run.done; // the run's stream ends by itself
    await waitFor(async () => global.pings() >= 3, 20000, 'three pings on the global stream');
    global.close();
    assert.strictEqual(run.status, 200);
    assert.ok(run.ended);
    const g = framing(global.bytes, '/api/events');
    const r = framing(run.bytes, `/api/runs/${id}/events`);
    assert.ok(r.filter((b) => b.comment === PING).length >= 1, 'the run stream had pings too');
    const afterPing = r.findIndex((b, i) => i > 0 && r[i - 1].comment === PING && b.event);
    assert.ok(afterPing > 0, 'an event followed a ping (where a stray byte would land)');
    const events = r.filter((b) => b.event);
    const last = events.pop();
    assert.deepStrictEqual(last.data, { run_id: id, status: 'done' });
    assert.strictEqual(last.event, 'end');
    const tail = events[events.length - 1];
    assert.strictEqual(tail.event, 'status');
    assert.strictEqual(tail.data.status, 'done', 'the end comes right after the terminal event');
    assert.ok(run.text().endsWith('event: end\ndata: {"run_id":' + id + ',"status":"done"}\n\n'));
    // the global stream saw the same events of the run, under the same ids
    const mine = g.filter((b) => b.event && b.data.run_id === id).map((b) => b.id);
    assert.deepStrictEqual(mine, events.filter((e) => mine.includes(e.id)).map((e) => e.id));
    assert.ok(!g.some((b) => b.event === 'end'), 'the global stream does not end');
    // a finished run: replay and end at once, also when resuming past its end
    const again = raw(d.port, `/api/runs/${id}/events`);
    await again.done;
    assert.deepStrictEqual(framing(again.bytes, 'replay').filter((b) => b.event).map((b) => b.id ?? 'end'),
      [...events.map((e) => e.id), 'end']);
    const resumed = raw(d.port, `/api/runs/${id}/events`, { 'Last-Event-ID': String(tail.id) });
    await resumed.done;
    assert.deepStrictEqual(framing(resumed.bytes, 'resumed').filter((b) => b.event).map((b) => b.event), ['end']);
    assert.strictEqual(resumed.pings(), 0, 'nothing to wait for');
  });

  await t.test('a deleted run\'s open stream ends with status deleted', async () => {
    const id = (await d.req('POST', '/api/runs', tinySpec({ name: 'to delete' }))).json.id;
    await d.waitRun(id, ['done']);
    const s = new Sse(d.port, `/api/runs/${id}/events`, { lastEventId: 1e12 });
    await s.ready; // a client resuming past everything: it gets only the end
    await s.waitFor((e) => e.event === 'end', 5000, 'the end');
    assert.deepStrictEqual(s.events.map((e) => e.data), [{ run_id: id, status: 'done' }]);
    s.close();
  });

  await t.test('EventSource: cut off after a ping, resumes with Last-Event-ID, every event once', async () => {
    const conns = [];
    let cut = null;
    const sawPing = {};
    sawPing.promise = new Promise((r) => { sawPing.resolve = r; });
    // fetch as the client does it, with the test between: it watches the
    // bytes, and breaks the first connection once an event followed a ping
    const fetchCut = async (url, init) => {
      const res = await fetch(url, init);
      const conn = { lastEventId: init.headers['Last-Event-ID'] ?? null, text: '' };
      conns.push(conn);
      const reader = res.body.getReader();
      let cutNext = false;
      const body = new ReadableStream({
        async pull(ctl) {
          if (cutNext) { // the chunk before was delivered: now the connection breaks
            reader.cancel();
            ctl.error(new Error('cut by the test'));
            return;
          }
          const { value, done } = await reader.read();
          if (done) { ctl.close(); return; }
          conn.text += Buffer.from(value).toString('utf8');
          const p = conn.text.indexOf(`${PING}\n\n`);
          if (p >= 0) sawPing.resolve();
          if (conns.length === 1 && p >= 0 && /\nid: \d+\n[^]*\n\n/.test(conn.text.slice(p))) {
            cut = conn;
            cutNext = true;
          }
          ctl.enqueue(value);
        },
        cancel() { return reader.cancel(); },
      });
      return new Response(body, { status: res.status, headers: res.headers });
    };
    const got = [];
    const es = new EventSource(`http://127.0.0.1:${d.port}/api/events`, { fetch: fetchCut });
    t.after(() => es.close());
    for (const type of ['run', 'status', 'metric', 'progress', 'log', 'checkpoint', 'artifact', 'worker', 'deleted'])
      es.addEventListener(type, (ev) => got.push({ id: Number(ev.lastEventId), type, data: JSON.parse(ev.data) }));
    await sawPing.promise;
    const id = (await d.req('POST', '/api/runs', learnSpec('resumed', 8))).json.id;
    await d.waitRun(id, ['done']);
    await waitFor(async () => got.some((e) => e.type === 'status' && e.data.run_id === id && e.data.status === 'done'),
      20000, 'the client to see the run finish');
    assert.ok(cut, 'the first connection was cut after a ping and an event');
    assert.ok(conns.length >= 2, 'the client reconnected');
    const complete = cut.text.slice(0, cut.text.lastIndexOf('\n\n') + 2);
    const cutIds = [...complete.matchAll(/(?:^|\n)id: (\d+)\n/g)].map((m) => m[1]);
    assert.ok(cutIds.length > 0);
    assert.strictEqual(conns[1].lastEventId, cutIds[cutIds.length - 1],
      'the reconnect resumed after the last event of the cut connection');
    // what the store holds over the same span, read by a plain client
    const ids = got.map((e) => e.id);
    const maxId = ids[ids.length - 1];
    const ref = raw(d.port, '/api/events', { 'Last-Event-ID': String(ids[0] - 1) });
    await waitFor(async () => ref.text().includes(`id: ${maxId}\n`) && ref.text().endsWith('\n\n'), 10000,
      'the reference replay');
    ref.close();
    const want = framing(ref.bytes, 'reference').filter((e) => e.event && e.id <= maxId).map((e) => e.id);
    assert.deepStrictEqual(ids, want, 'every event exactly once, in order');
  });

  await d.stop();
});
