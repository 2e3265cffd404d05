// spinqd_slurm.test.js - spinqd with executor = slurm against a real
// single-node Slurm cluster that the test starts (tests/slurm/cluster.sh:
// munged, slurmctld, slurmd in a temp dir, as root) and stops at the end.
// A spinquant run with resources.tasks 2 goes PENDING -> RUNNING (on this
// host) -> done with the results of the same spec on a local worker; a
// scancel of its job mid-learning makes it resume from its checkpoint in a
// new job and finish; a cancel through the API removes the job from squeue;
// a job sbatch refuses (a wrong partition) fails the run after max_attempts.
// Nothing is skipped: when the cluster cannot start, the test fails with
// the reason.
import test from 'node:test';
import assert from 'node:assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Daemon, Sse, learnSpec, waitFor, ROOT } from './daemon.js';

const CLUSTER = path.join(ROOT, 'tests/slurm/cluster.sh');
const HOST = os.hostname().split('.')[0];

let clusterDir;
function slurm(cmd, args) {
  return spawnSync(cmd, args, { encoding: 'utf8', env: process.env });
}

test.before(() => {
  clusterDir = fs.mkdtempSync(path.join(os.tmpdir(), 'spinq-slurm-'));
  const r = slurm(CLUSTER, ['start', clusterDir]);
  if (r.status !== 0) {
    throw new Error(`the test cluster did not start (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  }
  process.env.SLURM_CONF = path.join(clusterDir, 'slurm.conf'); // spinqd's sbatch/squeue/scancel and ours
});

test.after(() => {
  const r = slurm(CLUSTER, ['stop', clusterDir]);
  assert.strictEqual(r.status, 0, r.stderr);
  assert.ok(!fs.existsSync(clusterDir), 'the cluster dir is gone');
});

// The jobs run the release worker: under MPI, LeakSanitizer reports what
// OpenMPI's own components leave at MPI_Finalize, and the job would end
// FAILED after every run. The daemon is the sanitizer build (when built).
const REL_WORKER = path.join(ROOT, 'build/rel/spinq-worker');
const slurmDaemon = (extra = []) => new Daemon({
  workers: 0,
  args: ['--executor', 'slurm', '--slurm-poll', '0.5', '--heartbeat-timeout', '10', '--slurm-worker-bin', REL_WORKER,
    ...extra],
});

// After each test, passed or not: no daemon left running (a failed
// assertion must not leave one behind), its data dir removed.
async function gone(d) {
  if (d.proc && d.proc.exitCode === null && !d.proc.signalCode) await d.kill9();
  d.cleanup();
}

function inSqueue(job) {
  const r = slurm('squeue', ['-h', '-o', '%i', '-j', job]);
  return r.status === 0 && r.stdout.split('\n').some((l) => l.trim() === job);
}

test('srun --mpi=pmix -n 2 runs MPI ranks on the test cluster', () => {
  const r = slurm('srun', ['--mpi=pmix', '-n', '2', 'sh', '-c', 'echo rank=$PMIX_RANK']);
  assert.strictEqual(r.status, 0, r.stderr);
  assert.deepStrictEqual(r.stdout.trim().split('\n').sort(), ['rank=0', 'rank=1']);
});

test('bad Slurm settings and resources are refused, naming the setting or field', async (t) => {
  const bad = spawnSync(slurmDaemon().bin, ['--executor', 'kubernetes'], { encoding: 'utf8' });
  assert.strictEqual(bad.status, 2);
  assert.match(bad.stderr, /executor: expected 'local' or 'slurm', got 'kubernetes'/);
  const noListen = slurmDaemon(['--worker-listen', '']);
  t.after(() => gone(noListen));
  noListen.port = 1; // never answers: start() must fail at once
  await assert.rejects(noListen.start(), /exited at start/);
  assert.match(noListen.log, /executor slurm: .*worker_listen/);
  const d = await slurmDaemon().start();
  t.after(() => gone(d));
  const r = await d.req('POST', '/api/runs', learnSpec(3, { resources: { nodes: 2, tasks: 1 } }));
  assert.strictEqual(r.status, 422);
  assert.match(JSON.stringify(r.json), /resources\.tasks/);
  const r2 = await d.req('POST', '/api/runs', learnSpec(3, { resources: { gpus: 1 } }));
  assert.strictEqual(r2.status, 422);
  assert.match(JSON.stringify(r2.json), /resources\.gpus/);
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log.slice(-3000));
});

test('a job sbatch refuses counts as an attempt; the run fails with sbatch\'s words', async (t) => {
  const d = await slurmDaemon(['--slurm-partition', 'nosuchpartition', '--max-attempts', '2']).start();
  t.after(() => gone(d));
  const id = (await d.req('POST', '/api/runs', learnSpec(3))).json.id;
  const run = await d.waitRun(id, ['failed', 'done'], 30000);
  assert.strictEqual(run.status, 'failed');
  assert.match(run.reason, /^sbatch failed \(exit 1\): [\s\S]*nosuchpartition[\s\S]* \(gave up after 2 attempts\)$/);
  assert.strictEqual(run.attempts, 2);
  assert.strictEqual(run.slurm_job_id, null, 'no job was made');
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log.slice(-3000));
});

test('a 2-task spinquant run: PENDING -> RUNNING -> done, with the results of a local run', async (t) => {
  const spec = learnSpec(12);
  // the same spec on a local worker (the default executor), for the results;
  // with the threads of one task (threads_per_task 1): this short 4-bit
  // learning is chaotic enough that OpenBLAS's threaded summation order
  // alone moves the perplexity in the second digit
  const saved = { SPINQ_THREADS: process.env.SPINQ_THREADS, OPENBLAS_NUM_THREADS: process.env.OPENBLAS_NUM_THREADS };
  Object.assign(process.env, { SPINQ_THREADS: '1', OPENBLAS_NUM_THREADS: '1' });
  const local = new Daemon({ workers: 1, bin: path.join(ROOT, 'build/rel/spinqd') }); // the jobs' build
  try { await local.start(); } finally {
    for (const [k, v] of Object.entries(saved)) { if (v === undefined) delete process.env[k]; else process.env[k] = v; }
  }
  t.after(() => gone(local));
  const lid = (await local.req('POST', '/api/runs', spec)).json.id;
  const lrun = await local.waitRun(lid, ['done', 'failed'], 120000);
  assert.strictEqual(lrun.status, 'done', lrun.reason);
  await local.stop();

  const d = await slurmDaemon().start();
  t.after(() => gone(d));
  const r = await d.req('POST', '/api/runs', { ...spec, resources: { tasks: 2, threads_per_task: 1 } });
  assert.strictEqual(r.status, 201, JSON.stringify(r.json));
  const id = r.json.id;
  assert.deepStrictEqual(r.json.spec.resources, { nodes: 0, tasks: 2, threads_per_task: 1 });
  const sse = new Sse(d.port, `/api/runs/${id}/events`);
  await sse.waitFor((e) => e.event === 'status' && ['done', 'failed', 'canceled'].includes(e.data.status), 180000,
    'the end of the run');
  const run = await d.run(id);
  assert.strictEqual(run.status, 'done', `${run.reason}\n${d.log.slice(-3000)}`);
  const states = sse.events.filter((e) => e.event === 'slurm').map((e) => e.data);
  assert.strictEqual(states[0].state, 'PENDING', JSON.stringify(states));
  const running = states.find((s) => s.state === 'RUNNING');
  assert.ok(running, `RUNNING seen: ${JSON.stringify(states)}`);
  assert.strictEqual(running.nodes, HOST);
  assert.ok(states.every((s) => s.job_id === states[0].job_id), 'one job');
  assert.strictEqual(run.slurm_job_id, states[0].job_id);
  assert.strictEqual(run.slurm_jobs, 1);
  assert.strictEqual(run.attempts, 1);
  assert.strictEqual(run.worker_name, `slurm-${run.slurm_job_id}`);
  // the job leaves Slurm on its own once the worker has delivered
  await waitFor(async () => (await d.run(id)).slurm_state === 'COMPLETED', 20000,
    `the job COMPLETED (it is ${(await d.run(id)).slurm_state})`);
  // the two ranks ran under MPI; the job's log is rank 0's
  const logs = fs.readdirSync(path.join(d.dataDir, 'slurm'));
  assert.deepStrictEqual(logs, [`run-${id}-${run.slurm_job_id}.out`]);
  // the same scores as the local run
  const keys = Object.keys(lrun.metrics).filter((k) => !k.startsWith('train/'));
  assert.ok(keys.length >= 1, JSON.stringify(lrun.metrics));
  for (const k of [...keys, 'train/loss']) {
    const a = run.metrics[k].value, b = lrun.metrics[k].value;
    assert.ok(Math.abs(a - b) <= 1e-4 * Math.abs(b), `${k}: slurm ${a}, local ${b}`);
  }
  const arts = (await d.req('GET', `/api/runs/${id}/artifacts`)).json.artifacts.map((a) => a.name).sort();
  assert.deepStrictEqual(arts, ['model.spq', 'results.json', 'rotation.safetensors']);
  sse.close();
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log.slice(-3000));
});

test('scancel of the job mid-learning: the run resumes from its checkpoint in a new job and finishes', async (t) => {
  const d = await slurmDaemon().start();
  t.after(() => gone(d));
  const id = (await d.req('POST', '/api/runs', learnSpec(60, { resources: { tasks: 2 } }))).json.id;
  const sse = new Sse(d.port, `/api/runs/${id}/events`);
  await sse.waitFor((e) => e.event === 'checkpoint' || (e.event === 'metric' && e.data.key === 'train/loss' &&
    e.data.step >= 7), 120000, 'learning past a checkpoint');
  const first = (await d.run(id)).slurm_job_id;
  const r = slurm('scancel', [first]);
  assert.strictEqual(r.status, 0, r.stderr);
  const requeued = await sse.waitFor((e) => e.event === 'status' && e.data.status === 'queued', 30000, 're-queue');
  assert.match(requeued.data.reason, /went away|Slurm job/);
  const second = await sse.waitFor((e) => e.event === 'status' && e.data.status === 'running' && e.data.attempt === 2,
    60000, 'the second attempt');
  assert.ok(second.data.resume_step >= 3, `resumed from a checkpoint: ${JSON.stringify(second.data)}`);
  const run = await d.waitRun(id, ['done', 'failed', 'canceled'], 180000);
  assert.strictEqual(run.status, 'done', `${run.reason}\n${d.log.slice(-3000)}`);
  assert.strictEqual(run.attempts, 2);
  assert.strictEqual(run.slurm_jobs, 2);
  assert.notStrictEqual(run.slurm_job_id, first, 'a new job');
  const jobs = new Set(sse.events.filter((e) => e.event === 'slurm').map((e) => e.data.job_id));
  assert.deepStrictEqual([...jobs], [first, run.slurm_job_id]);
  const firstStates = sse.events.filter((e) => e.event === 'slurm' && e.data.job_id === first).map((e) => e.data.state);
  assert.ok(firstStates.some((s) => /^(CANCELLED|GONE)/.test(s)), `the first job ended: ${firstStates}`);
  // the loss curve goes on from the checkpoint: every step is there
  const pts = (await d.req('GET', `/api/runs/${id}/metrics?key=train/loss`)).json.points;
  assert.strictEqual(pts[pts.length - 1][0], 60);
  sse.close();
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log.slice(-3000));
});

test('cancel through the API: the run is canceled and its job gone from squeue', async (t) => {
  const d = await slurmDaemon().start();
  t.after(() => gone(d));
  const id = (await d.req('POST', '/api/runs', learnSpec(400, { resources: { tasks: 2 } }))).json.id;
  const job = (await waitFor(async () => {
    const r = await d.run(id);
    return r.slurm_state === 'RUNNING' && r.status === 'running' ? r : null;
  }, 60000, 'the job RUNNING')).slurm_job_id;
  assert.ok(inSqueue(job), 'squeue lists the job while it runs');
  const c = await d.req('POST', `/api/runs/${id}/cancel`);
  assert.ok(c.status === 200 || c.status === 202, JSON.stringify(c.json));
  const run = await d.waitRun(id, ['canceled', 'done', 'failed'], 30000);
  assert.strictEqual(run.status, 'canceled', run.reason);
  assert.strictEqual(run.reason, 'canceled while running', 'the worker stopped the run itself and said so');
  await waitFor(async () => !inSqueue(job), 20000, `job ${job} gone from squeue`);
  await waitFor(async () => /CANCELLED|COMPLETED|GONE/.test((await d.run(id)).slurm_state || ''), 10000, 'the state');
  assert.strictEqual((await d.run(id)).slurm_jobs, 1, 'no new job for a canceled run');
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log.slice(-3000));
});
