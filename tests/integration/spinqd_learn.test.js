// spinqd_learn.test.js - SpinQuant jobs through the daemon: the loss curve
// arrives over SSE while the rotations learn, checkpoints and artifacts are
// stored and downloadable with their sha256; a worker killed with -9 in the
// middle of learning, or a daemon stopped with SIGTERM, leaves the run to
// resume from its checkpoint and end with exactly the rotations of an
// uninterrupted run with the same seed. GPTQ runs layer by layer and its
// packed model is stored as an artifact.
import test from 'node:test';
import assert from 'node:assert';
import crypto from 'node:crypto';
import { Daemon, Sse, learnSpec, waitFor } from './daemon.js';

const sha = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

async function artifact(d, id, name) {
  const list = (await d.req('GET', `/api/runs/${id}/artifacts`)).json.artifacts;
  const meta = list.find((a) => a.name === name);
  assert.ok(meta, `run ${id} has ${name}: ${JSON.stringify(list)}`);
  const dl = await d.req('GET', `/api/runs/${id}/artifacts/${name}`);
  assert.strictEqual(sha(dl.body), meta.sha256, `${name} downloads with its recorded sha256`);
  assert.strictEqual(dl.body.length, meta.size);
  return dl.body;
}

async function lossCurve(d, id) {
  return (await d.req('GET', `/api/runs/${id}/metrics?key=train/loss`)).json.points;
}

test('learned rotations: loss curve over SSE, checkpoints, artifacts; resume after kill -9 and SIGTERM is exact',
  async (t) => {
    const d = await new Daemon({ workers: 2 }).start();
    t.after(() => d.cleanup());
    const steps = 12;

    let ref, refRotation, refCurve;
    await t.test('an uninterrupted run reports its loss curve live and stores what it made', async () => {
      const r = await d.req('POST', '/api/runs', learnSpec(steps));
      assert.strictEqual(r.status, 201, JSON.stringify(r.json));
      ref = r.json.id;
      const sse = new Sse(d.port, `/api/runs/${ref}/events`);
      const first = await sse.waitFor((e) => e.event === 'metric' && e.data.key === 'train/loss', 60000, 'a loss');
      assert.strictEqual(first.data.step, 1);
      assert.strictEqual((await d.run(ref)).status, 'running', 'the loss arrives while it learns');
      await sse.waitFor((e) => e.event === 'status' && ['done', 'failed'].includes(e.data.status), 120000, 'the end');
      const run = await d.run(ref);
      assert.strictEqual(run.status, 'done', run.reason);
      const losses = sse.events.filter((e) => e.event === 'metric' && e.data.key === 'train/loss');
      assert.deepStrictEqual(losses.map((e) => e.data.step), Array.from({ length: steps }, (_, i) => i + 1));
      assert.ok(losses.every((e) => Number.isFinite(e.data.value) && e.data.value > 0));
      const stages = sse.events.filter((e) => e.event === 'status' && e.data.stage).map((e) => e.data.stage);
      assert.deepStrictEqual(stages, ['load', 'fuse', 'rotate', 'learn', 'quantize', 'evaluate', 'write']);
      sse.close();
      refCurve = await lossCurve(d, ref);
      assert.deepStrictEqual(refCurve.map((p) => p[1]), losses.map((e) => e.data.value));
      assert.ok(run.metrics.ppl.value > 1, 'a W4A4KV4 perplexity');
      const ck = (await d.req('GET', `/api/runs/${ref}/checkpoints`)).json.checkpoints;
      assert.deepStrictEqual(ck.map((c) => c.step), [3, 6, 9, 12]);
      const last = await d.req('GET', `/api/runs/${ref}/checkpoints/12`);
      assert.strictEqual(sha(last.body), ck[3].sha256);
      refRotation = await artifact(d, ref, 'rotation.safetensors');
      await artifact(d, ref, 'results.json');
    });

    await t.test('kill -9 of the worker during learning: it resumes from the last checkpoint, same rotations', async () => {
      const id = (await d.req('POST', '/api/runs', learnSpec(steps))).json.id;
      const sse = new Sse(d.port, `/api/runs/${id}/events`);
      await sse.waitFor((e) => e.event === 'checkpoint' && e.data.step === 3, 60000, 'the first checkpoint');
      const w = (await d.req('GET', '/api/workers')).json.workers.find((x) => x.run_id === id);
      process.kill(w.pid, 'SIGKILL');
      const resumed = await sse.waitFor((e) => e.event === 'status' && e.data.attempt === 2, 30000, 'attempt 2');
      assert.ok(resumed.data.resume_step >= 3, `resumed from step ${resumed.data.resume_step}`);
      assert.notStrictEqual(resumed.data.worker_id, w.id);
      const run = await d.waitRun(id, ['done', 'failed'], 120000);
      assert.strictEqual(run.status, 'done', run.reason);
      assert.strictEqual(run.attempts, 2);
      sse.close();
      const rot = await artifact(d, id, 'rotation.safetensors');
      assert.ok(rot.equals(refRotation), 'the final rotations equal those of the uninterrupted run');
      assert.deepStrictEqual(await lossCurve(d, id), refCurve, 'and so does every step\'s loss');
    });

    await t.test('SIGTERM during learning: the worker checkpoints where it is; after a restart the run ends the same',
      async () => {
        const id = (await d.req('POST', '/api/runs', learnSpec(steps))).json.id;
        const sse = new Sse(d.port, `/api/runs/${id}/events`);
        await sse.waitFor((e) => e.event === 'metric' && e.data.key === 'train/loss' && e.data.step === 4, 60000, 'step 4');
        sse.close();
        const { code } = await d.stop();
        assert.strictEqual(code, 0, d.log.slice(-3000));
        const ck = (await (async () => { await d.start(); return d.req('GET', `/api/runs/${id}/checkpoints`); })()).json;
        const saved = ck.checkpoints.map((c) => c.step);
        assert.ok(saved.some((s) => s >= 4 && s % 3 !== 0) || saved.includes(steps),
          `a checkpoint of the step it stopped at: ${saved}`);
        const run = await d.waitRun(id, ['done', 'failed'], 120000);
        assert.strictEqual(run.status, 'done', run.reason);
        assert.strictEqual(run.attempts, 1, 'a drain does not use an attempt');
        const rot = await artifact(d, id, 'rotation.safetensors');
        assert.ok(rot.equals(refRotation), 'the final rotations equal those of the uninterrupted run');
        assert.deepStrictEqual(await lossCurve(d, id), refCurve);
      });

    await t.test('GPTQ reports its layer errors and stores the packed model', async () => {
      const spec = learnSpec(2, { weights: { method: 'gptq', calib: 'tinystories/calib.txt', nsamples: 2, seqlen: 64 } });
      const id = (await d.req('POST', '/api/runs', spec)).json.id;
      const run = await d.waitRun(id, ['done', 'failed'], 120000);
      assert.strictEqual(run.status, 'done', run.reason);
      const errs = (await d.req('GET', `/api/runs/${id}/metrics?key=gptq/err`)).json.points;
      const rtn = (await d.req('GET', `/api/runs/${id}/metrics?key=gptq/err_rtn`)).json.points;
      assert.deepStrictEqual(errs.map(([step]) => step), [0, 1, 2, 3, 4], 'one [step, value] point per layer');
      assert.ok(errs.every(([, v], i) => v > 0 && v < rtn[i][1]), `GPTQ below RTN on every layer: ${errs} ${rtn}`);
      const spq = await artifact(d, id, 'model.spq');
      assert.strictEqual(spq.readBigUInt64LE(0) > 0n, true);
      assert.match(spq.subarray(8, 4096).toString(), /"format":"spinq-packed"/);
    });

    const { code } = await d.stop();
    assert.strictEqual(code, 0, d.log.slice(-3000));
  });
