// spinqd_malformed.test.js - hundreds of malformed requests, generated
// programmatically (bad JSON, wrong types, unknown fields, values that do not
// go with another field, oversized bodies,
// path traversal in model and dataset names, bad ids, bad query parameters,
// bad tokens, bad sweeps, control characters in paths, unknown orders,
// invalid UTF-8): each gets the right 4xx with the field named, and the
// daemon keeps serving (and exits cleanly under the sanitizers). Heads that
// libmicrohttpd itself refuses (oversized URL or headers, a broken
// Content-Length) get the same JSON envelope, and exactly one response.
import test from 'node:test';
import assert from 'node:assert';
import net from 'node:net';
import { Daemon, fullSpec, tinySpec, waitFor } from './daemon.js';

const MAX_BODY = 65536;

function setPath(obj, path, value) {
  const segs = path.replace(/\[(\d+)\]/g, '.$1').split('.');
  let cur = obj;
  for (let i = 0; i < segs.length - 1; i++) {
    if (cur[segs[i]] === undefined) cur[segs[i]] = {};
    cur = cur[segs[i]];
  }
  cur[segs[segs.length - 1]] = value;
  return obj;
}


function cases(adminToken) {
  const c = []; // {name, method, path, body, token, headers, status, field, code}
  const add = (x) => c.push({ method: 'POST', path: '/api/runs', token: adminToken, ...x });

  // 1. bad JSON: every strict prefix of a valid spec, and a few classics
  const text = JSON.stringify(tinySpec());
  for (let i = 1; i < text.length; i++) add({ name: `prefix ${i}`, body: text.slice(0, i), status: 400, field: null, code: 'invalid_json' });
  for (const b of ['', ' ', 'nul', '{"model":}', "{'model':'x'}", '{"model":"a",}', '[1,2', '{"a":1}}', '\u0000',
    '{"model":"stories260K","model":"x"}', '{"model":"\\ud800"}'])
    add({ name: `bad json ${JSON.stringify(b)}`, body: b, status: 400, field: null, code: 'invalid_json' });
  // not an object at all: a bare scalar is not a JSON document to jansson; an array is the wrong kind
  for (const b of ['1', '"x"', 'true', 'null'])
    add({ name: `not a document ${b}`, body: b, status: 400, field: null, code: 'invalid_json' });
  for (const b of ['[]', '[{"model":"stories260K"}]'])
    add({ name: `not an object ${b}`, body: b, status: 422, field: null });

  // 2. wrong types and out-of-range values, one field at a time
  const wrong = {
    name: [3, '', 'x'.repeat(201), ['a']], tags: ['a', 3, {}], 'tags[0]': [3, '', null, 'x'.repeat(65)],
    model: [3, null, true, ''], seed: ['1', -1, 1.5],
    'quant.w_bits': ['4', 5, true, 1.0 + 0.5], 'quant.w_sym': [1, 'yes', null], 'quant.w_groupsize': [-1, 'x', 1.5],
    'quant.w_clip': [0], 'quant.a_bits': [2, '4', 32], 'quant.a_clip': ['x', 0, 2, -1], 'quant.kv_bits': [3, 'x'],
    'quant.kv_clip': [0, 1.01], quant: [1, 'x', []],
    rotation: [[], 'x', 1], 'rotation.mode': ['x', 3, 'learned'], 'rotation.online_had': [0, 'no'],
    'rotation.init': ['zeros', 1], 'rotation.train': ['x', []], 'rotation.train.steps': [0, 1.5, '10', 100001],
    'rotation.train.lr': [0, -1, 'x'], 'rotation.train.batch': [0, 'x'], 'rotation.train.seqlen': [1, -5],
    'rotation.train.calib': [5, ''], 'rotation.train.w_bits': [7], 'rotation.train.checkpoint_every': [-1, 'x'],
    weights: [2], 'weights.method': ['awq', 1], 'weights.nsamples': [0], 'weights.seqlen': [0], 'weights.damp': [-1, 2, 'x'],
    'weights.act_order': ['no'], 'weights.blocksize': [0],
    eval: [[]], 'eval.ppl': [{}, 'x'], 'eval.ppl[0]': ['x', 3], 'eval.ppl[0].data': [3, ''], 'eval.ppl[0].seqlen': [1, 'x'],
    'eval.kld': [1], 'eval.tasks': ['x'], 'eval.tasks[0]': [1], 'eval.tasks[0].name': ['mmlu', 3], 'eval.tasks[0].data': [0],
    'eval.limit': [-1, 'x', 0.5],
  };
  for (const [path, values] of Object.entries(wrong))
    for (const v of values) {
      // a wrong-typed container is reported at the container; a wrong leaf at the leaf
      add({ name: `${path} = ${JSON.stringify(v)}`, body: setPath(fullSpec(), path, v), status: 422, field: path });
    }
  // values that are fine alone but not with another field: a 422 naming the field to change, not a run that
  // fails later (fullSpec has 16-bit weights and weights.method "none")
  const rules = [
    ['4-bit weights without a weight method', { quant: { w_bits: 4 } }, 'weights.method'],
    ['2-bit weights without a weight method', { quant: { w_bits: 2 }, weights: { method: 'none' } }, 'weights.method'],
    ['rotation mode file without a file', { rotation: { mode: 'file' } }, 'rotation.file'],
    ['a rotation file with another mode', { rotation: { mode: 'hadamard', file: 'tinystories/test.txt' } }, 'rotation.file'],
    ['a rotation file that is not there', { rotation: { mode: 'file', file: 'no/such.safetensors' } }, 'rotation.file'],
    ['GPTQ without damping', { weights: { method: 'gptq', damp: 0 } }, 'weights.damp'],
  ];
  for (const [name, extra, field] of rules) add({ name, body: fullSpec(extra), status: 422, field });
  const arr = fullSpec();
  arr.eval.ppl = Array.from({ length: 17 }, () => ({ data: 'tinystories/test.txt' }));
  add({ name: 'too many ppl entries', body: arr, status: 422, field: 'eval.ppl' });

  // 3. unknown fields at every level
  const levels = ['', 'quant', 'rotation', 'rotation.train', 'weights', 'eval', 'eval.ppl[0]', 'eval.tasks[0]'];
  for (const lvl of levels)
    for (const k of ['colour', 'w_bitz', 'Model', 'extra_field', 'x']) {
      const path = lvl ? `${lvl}.${k}` : k;
      add({ name: `unknown ${path}`, body: setPath(fullSpec(), path, 1), status: 422, field: path });
    }

  // 4. path traversal and missing files in model and dataset names
  const nameFields = ['model', 'eval.ppl[0].data', 'eval.tasks[0].data', 'weights.calib', 'rotation.train.calib'];
  const evil = ['../models/stories260K', '..', '.', './stories260K', '/etc/passwd', '/work/shared/models/stories260K',
    'stories260K/../../models/stories260K', 'a//b', 'a/', 'a\\..\\b', '..\\..\\etc', 'tinystories/../../../etc/passwd',
    'x/./y', '%2e%2e/x'];
  for (const f of nameFields)
    for (const v of evil) {
      // '%2e%2e' is no escape (JSON does not percent-decode): it only fails where the name is resolved
      if (v.startsWith('%') && (f === 'weights.calib' || f === 'rotation.train.calib')) continue;
      add({ name: `${f} = ${v}`, body: setPath(fullSpec(), f, v), status: 422, field: f });
    }
  for (const f of ['model', 'eval.ppl[0].data', 'eval.tasks[0].data'])
    add({ name: `${f} missing`, body: setPath(fullSpec(), f, 'no/such/thing'), status: 422, field: f });
  add({ name: 'dataset is a directory', body: setPath(fullSpec(), 'eval.ppl[0].data', 'tinystories'), status: 422,
    field: 'eval.ppl[0].data' });

  // 5. oversized bodies (announced by Content-Length, or JSON that is simply too long)
  for (const n of [MAX_BODY + 1, MAX_BODY + 1000, 2 * MAX_BODY, 1 << 20, 4 << 20]) {
    const body = JSON.stringify({ model: 'stories260K', name: 'x'.repeat(n) });
    add({ name: `body of ${body.length} bytes`, body, status: 413, field: 'body', code: 'too_large' });
  }
  add({ name: 'oversized sweep', path: '/api/sweeps', body: JSON.stringify({ base: { model: 'x'.repeat(MAX_BODY) } }),
    status: 413, field: 'body' });

  // 6. bad ids in every route that takes one
  const sub = ['', '/metrics', '/events', '/checkpoints', '/artifacts', '/checkpoints/latest', '/artifacts/results.json'];
  for (const bad of ['abc', '0', '-1', '1.5', '99999999999999999999999', '1e3', '0x10', '%20', '1a'])
    for (const s of sub) c.push({ name: `GET id ${bad}${s}`, method: 'GET', path: `/api/runs/${bad}${s}`, token: adminToken, status: 400, field: 'id' });
  for (const bad of ['abc', '0', '-7'])
    for (const [m, s] of [['POST', '/cancel'], ['DELETE', '']])
      c.push({ name: `${m} id ${bad}${s}`, method: m, path: `/api/runs/${bad}${s}`, token: adminToken, status: 400, field: 'id' });
  for (const bad of ['x', '0'])
    c.push({ name: `sweep id ${bad}`, method: 'GET', path: `/api/sweeps/${bad}`, token: adminToken, status: 400, field: 'id' });
  for (const s of sub) c.push({ name: `GET missing run${s}`, method: 'GET', path: `/api/runs/987654${s}`, token: adminToken, status: 404, field: 'id' });
  c.push({ name: 'cancel missing run', method: 'POST', path: '/api/runs/987654/cancel', token: adminToken, status: 404, field: 'id' });
  c.push({ name: 'delete missing run', method: 'DELETE', path: '/api/runs/987654', token: adminToken, status: 404, field: 'id' });
  c.push({ name: 'missing sweep', method: 'GET', path: '/api/sweeps/987654', token: adminToken, status: 404, field: 'id' });

  // 7. bad query parameters
  const q = [['limit=0', 'limit'], ['limit=abc', 'limit'], ['limit=1001', 'limit'], ['limit=', 'limit'],
    ['offset=-1', 'offset'], ['offset=x', 'offset'], ['status=weird', 'status'], ['status=', 'status'],
    ['order=-', 'order'], ['order=', 'order'], ['sweep=x', 'sweep'], ['sweep=0', 'sweep'], ['foo=1', 'foo'],
    ['limit=5&bar=2', 'bar'], ['q=', 'q'], ['before_id=0', 'before_id'], ['before_id=x', 'before_id'],
    ['order=name&before_id=5', 'before_id'], [`model=${'m'.repeat(300)}`, 'model'],
    // an order that is neither a column nor a metric key some run has; text that is not UTF-8 or holds controls
    ['order=nosuch', 'order'], ['order=-nosuch', 'order'], [`order=${encodeURIComponent('id;DROP TABLE runs')}`, 'order'],
    ['order=ppl', 'order'], ['q=%FF', 'q'], ['q=%C3%28', 'q'], ['q=a%ED%A0%80', 'q'], ['model=%FE', 'model'],
    ['tag=%C0%AF', 'tag'], ['q=a%00b', 'q'], ['q=a%0Ab', 'q'], ['tag=x%7F', 'tag'], ['model=%1B', 'model']];
  for (const [qs, f] of q) c.push({ name: `list ?${qs}`, method: 'GET', path: `/api/runs?${qs}`, token: adminToken, status: 400, field: f });

  // 7b. control characters in a path (libmicrohttpd's decoding would end the name at a %00)
  for (const p of ['/api/runs/1/artifacts/results.json%00.txt', '/index.html%00.png', '/api/runs%00', '/api/runs/1%00',
    '/style.css%0a', '/api/runs/1/artifacts/a%09b', '/js/app.js%7F', '/api/health%1F', '/api/runs/1/checkpoints/%00'])
    c.push({ name: `control in path ${p}`, method: 'GET', path: p, token: adminToken, status: 400, field: 'path', code: 'invalid_path' });

  // 8. bad tokens
  const bads = [undefined, '', 'Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', `Bearer spq_${'0'.repeat(64)}`,
    `Bearer spq_${'g'.repeat(64)}`, 'Bearer spq_short', `Bearer ${adminToken}x`, `Bearer ${adminToken.slice(0, -1)}`,
    `bearer  ${'z'.repeat(68)}`, 'Token abc', `Bearer ${'spq_'.repeat(17)}`];
  for (const h of bads)
    for (const [m, p, body] of [['GET', '/api/runs'], ['POST', '/api/runs', tinySpec()], ['GET', '/api/runs/1'],
      ['GET', '/metrics'], ['POST', '/api/runs/1/cancel'], ['GET', '/api/workers']])
      c.push({ name: `auth ${JSON.stringify(h)} ${m} ${p}`, method: m, path: p, body,
        headers: h === undefined ? {} : { Authorization: h }, status: 401, field: 'Authorization' });

  // 9. bad sweeps
  const sw = (x) => ({ method: 'POST', path: '/api/sweeps', token: adminToken, ...x });
  const base = tinySpec();
  c.push(sw({ name: 'sweep without base', body: { grid: { seed: [1] } }, status: 422, field: 'base' }));
  c.push(sw({ name: 'sweep without grid', body: { base }, status: 422, field: 'grid' }));
  c.push(sw({ name: 'sweep empty grid', body: { base, grid: {} }, status: 422, field: 'grid' }));
  c.push(sw({ name: 'sweep grid not an object', body: { base, grid: [1] }, status: 422, field: 'grid' }));
  c.push(sw({ name: 'sweep unknown field', body: { base, grid: { seed: [1] }, extra: 1 }, status: 422, field: 'extra' }));
  c.push(sw({ name: 'sweep name type', body: { name: 3, base, grid: { seed: [1] } }, status: 422, field: 'name' }));
  for (const p of ['Rotation.lr', 'a..b', '[0]', '.seed', 'seed.', 'a b', 'eval.ppl[x]'])
    c.push(sw({ name: `sweep path ${p}`, body: { base, grid: { [p]: [1] } }, status: 422, field: `grid.${p}` }));
  for (const v of [[], 'x', 1, {}])
    c.push(sw({ name: `sweep values ${JSON.stringify(v)}`, body: { base, grid: { seed: v } }, status: 422, field: 'grid.seed' }));
  c.push(sw({ name: 'sweep bad value', body: { base, grid: { 'rotation.train.lr': [1, -1] } }, status: 422,
    field: 'grid.rotation.train.lr' }));
  c.push(sw({ name: 'sweep traversal', body: { base, grid: { model: ['stories260K', '../x'] } }, status: 422, field: 'grid.model' }));
  c.push(sw({ name: 'sweep bad base', body: { base: { ...base, colour: 1 }, grid: { seed: [1] } }, status: 422, field: 'base.colour' }));
  c.push(sw({ name: 'sweep too big', body: { base, grid: { seed: [...Array(40).keys()], 'eval.limit': [...Array(40).keys()] } },
    status: 422, field: 'grid' }));
  c.push(sw({ name: 'sweep index past end', body: { base, grid: { 'eval.ppl[3].seqlen': [64] } }, status: 422,
    field: 'grid.eval.ppl[3].seqlen' }));

  // 10. unknown endpoints and methods
  for (const p of ['/nope.html', '/api', '/api/run', '/api/runs/1/nope', '/api/runs/1/artifacts/a/b', '/etc/passwd', '/../../etc'])
    c.push({ name: `404 ${p}`, method: 'GET', path: p, token: adminToken, status: 404, field: null });
  for (const [m, p] of [['PUT', '/api/runs'], ['PATCH', '/api/runs/1'], ['GET', '/api/runs/1/cancel'], ['DELETE', '/api/runs'],
    ['POST', '/api/health'], ['PUT', '/api/sweeps/1']])
    c.push({ name: `405 ${m} ${p}`, method: m, path: p, token: adminToken, status: 405, field: null });
  return c;
}

test('malformed requests get the right 4xx with the field named', async (t) => {
  const d = new Daemon({ workers: 0, args: ['--max-body', String(MAX_BODY)] });
  d.port = undefined;
  await d.start().catch((e) => { throw e; });
  const admin = d.token('admin', 'admin');
  t.after(() => d.cleanup());
  // auth turns on once the daemon sees that a token exists: wait until it says so
  await waitFor(async () => (await d.req('GET', '/api/runs')).status === 401, 10000, 'auth to turn on');
  const all = cases(admin);
  assert.ok(all.length >= 500, `only ${all.length} cases`);
  t.diagnostic(`${all.length} malformed requests`);
  const failures = [];
  let next = 0;
  async function worker() {
    while (next < all.length) {
      const k = all[next++];
      const r = await d.req(k.method, k.path, k.body, k.token, k.headers || {});
      const err = r.json && r.json.error;
      const ok = r.status === k.status && err && typeof err.message === 'string' && typeof err.code === 'string' &&
        err.field === k.field && (!k.code || err.code === k.code);
      if (!ok) failures.push(`${k.name}: expected ${k.status} field ${k.field}, got ${r.status} ${r.body.toString().slice(0, 200)}`);
    }
  }
  await Promise.all(Array.from({ length: 6 }, worker));
  assert.deepStrictEqual(failures, [], `${failures.length} of ${all.length} cases failed`);

  // still serving, and a good request still works
  const h = await d.req('GET', '/api/health');
  assert.strictEqual(h.status, 200);
  const ok = await d.req('POST', '/api/runs', tinySpec(), admin);
  assert.strictEqual(ok.status, 201, JSON.stringify(ok.json));
  const list = await d.req('GET', '/api/runs', undefined, admin);
  assert.strictEqual(list.json.total, 1, 'no malformed request created a run');
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log.slice(-3000));
});

// One raw request on its own connection: every byte the daemon sends back
// until it closes (or 5 s pass: a kept-alive connection).
function rawExchange(port, bytes) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    const timer = setTimeout(() => sock.destroy(), 5000);
    sock.on('connect', () => sock.write(bytes));
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', (e) => (chunks.length ? null : reject(e)));
    sock.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString('latin1')); });
  });
}

test('heads libmicrohttpd refuses itself get one JSON response', async (t) => {
  const d = await new Daemon({ workers: 0 }).start();
  t.after(async () => { await d.stop(); d.cleanup(); });
  const head = (line, headers = []) => Buffer.from([line, 'Host: x', ...headers, '', ''].join('\r\n'), 'latin1');
  const cases = [
    ['URL over 8 KiB', head(`GET /api/runs?q=${'a'.repeat(9000)} HTTP/1.1`), 414, 'url'],
    ['headers over 16 KiB', head('GET /api/health HTTP/1.1', [`X-Big: ${'b'.repeat(20000)}`]), 431, 'headers'],
    ['headers over the connection memory', head('GET /api/health HTTP/1.1', [`X-Big: ${'b'.repeat(70000)}`]), 431, 'headers'],
    ['Content-Length: -1', head('POST /api/runs HTTP/1.1', ['Content-Length: -1']), 400, 'Content-Length'],
    ['Content-Length: abc', head('POST /api/runs HTTP/1.1', ['Content-Length: abc']), 400, 'Content-Length'],
    ['Content-Length: 2^70', head('POST /api/runs HTTP/1.1', ['Content-Length: 1180591620717411303424']), 413, 'Content-Length'],
  ];
  for (const [what, bytes, status, field] of cases) {
    const out = await rawExchange(d.port, bytes);
    const starts = out.match(/HTTP\/1\.1 \d{3}/g) || [];
    assert.deepStrictEqual(starts, [`HTTP/1.1 ${status}`], `${what}: exactly one response: ${JSON.stringify(out.slice(0, 600))}`);
    const [hdr, body] = out.split('\r\n\r\n');
    assert.match(hdr, /\r\nContent-Type: application\/json\r\n/i, what);
    const len = Number(/\r\nContent-Length: (\d+)/i.exec(hdr)[1]);
    assert.strictEqual(Buffer.byteLength(body, 'latin1'), len, `${what}: the body is what Content-Length says`);
    const err = JSON.parse(body).error;
    assert.strictEqual(err.field, field, what);
    assert.strictEqual(typeof err.code, 'string', what);
    assert.strictEqual(typeof err.message, 'string', what);
  }
  // after a refused request on a kept-alive connection, the next one is refused once too
  const two = await rawExchange(d.port, Buffer.concat([head('GET /api/health HTTP/1.1'),
    head('POST /api/runs HTTP/1.1', ['Content-Length: -1'])]));
  assert.deepStrictEqual(two.match(/HTTP\/1\.1 \d{3}/g), ['HTTP/1.1 200', 'HTTP/1.1 400'], two);
  assert.strictEqual((await d.req('GET', '/api/health')).status, 200, 'still serving');
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log.slice(-2000));
});
