// spinqd_fuzz.test.js - seeded random mutations of a full job spec and of a
// sweep, POSTed to a real daemon (no workers: runs stay queued). Every answer
// is 201 or a 4xx that names a field (or says the JSON is invalid); a 201's run
// reads back with a spec that parses again; nothing is a 5xx, and the daemon
// keeps serving and exits cleanly under the sanitizers. The hand-picked
// cases are in spinqd_malformed.test.js; this finds the ones nobody picked.
import test from 'node:test';
import assert from 'node:assert';
import { Daemon, fullSpec } from './daemon.js';
import { rng } from '../data/rng.mjs';

// every section set, with quantizers, learning, GPTQ and KLD on
const specToMutate = () => fullSpec({
  quant: { w_bits: 4, a_bits: 8, kv_bits: 8 },
  rotation: { mode: 'spinquant', train: { w_bits: 16 } },
  weights: { method: 'gptq' },
  eval: { kld: true },
});

// every [parent, key] of an object tree
function slots(o, out = []) {
  for (const k of Object.keys(o)) {
    out.push([o, k]);
    if (o[k] && typeof o[k] === 'object') slots(o[k], out);
  }
  return out;
}

function mutate(spec, r) {
  const pick = (xs) => xs[Math.floor(r() * xs.length)];
  const values = [null, true, false, 0, -1, 1, 2, 3, 4, 7, 8, 16, 17, 65, 1e308, -1e308, 0.5, 1e-300, 2 ** 31, 2 ** 53,
    -(2 ** 63), '', 'x', '..', '../../etc/passwd', '/etc/passwd', 'stories260K', 'tinystories/test.txt', 'a'.repeat(5000),
    '\u0000', '\ud83d\ude00', [], [1], ['a'], {}, { x: 1 }, [{}], [[]]];
  const value = () => structuredClone(pick(values)); // fresh: no object is placed twice
  const n = 1 + Math.floor(r() * 3);
  for (let i = 0; i < n; i++) {
    const all = slots(spec);
    const [o, k] = pick(all);
    const op = r();
    if (op < 0.15) delete o[k];
    else if (op < 0.25) o[`${k}_x`] = value(); // an unknown field beside a known one
    else o[k] = value();
  }
  return spec;
}

test('randomly mutated specs and sweeps get 201 or a 4xx naming the field; never a 5xx', async (t) => {
  const d = await new Daemon({ workers: 0 }).start();
  t.after(async () => { await d.stop(); d.cleanup(); });
  // SPINQD_FUZZ_SEED / SPINQD_FUZZ_N replay or extend a search
  const r = rng(Number(process.env.SPINQD_FUZZ_SEED || 20261122));
  const tally = {};
  for (let i = 0; i < Number(process.env.SPINQD_FUZZ_N || 400); i++) {
    const sweep = r() < 0.25;
    const spec = mutate(specToMutate(), r);
    const body = sweep ? mutate({ name: 'sw', base: spec, grid: { seed: [0, 1], 'quant.a_bits': [4, 8] } }, r) : spec;
    const res = await d.req('POST', sweep ? '/api/sweeps' : '/api/runs', body);
    const what = `#${i} ${JSON.stringify(body).slice(0, 400)} -> ${res.status} ${res.body.toString().slice(0, 300)}`;
    tally[res.status] = (tally[res.status] || 0) + 1;
    assert.ok(res.status === 201 || (res.status >= 400 && res.status < 500), what);
    if (res.status === 201) {
      const id = sweep ? res.json.runs?.[0]?.id ?? res.json.run_ids?.[0] : res.json.id;
      if (!sweep) {
        const back = await d.req('GET', `/api/runs/${id}`);
        assert.strictEqual(back.status, 200, what);
        const again = await d.req('POST', '/api/runs', back.json.spec);
        assert.strictEqual(again.status, 201, `the stored spec parses again: ${what}`);
      }
    } else {
      assert.ok(res.json?.error?.code, what);
      if (res.json.error.code !== 'invalid_json') assert.ok(res.json.error.field !== undefined, what);
    }
  }
  t.diagnostic(`answers by status: ${JSON.stringify(tally)}`);
  assert.ok(tally[201] > 0 && tally[422] > 0, `both accepted and rejected specs: ${JSON.stringify(tally)}`);
  assert.strictEqual((await d.req('GET', '/api/health')).status, 200);
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log);
});
