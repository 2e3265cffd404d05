// deploy.test.js - the deploy files against the code they deploy, since the
// container and the Kubernetes manifests cannot be built or run here: the
// manifests parse as YAML of the expected kinds, and every port, path, flag
// and binary they (and the Containerfile and systemd units) name is one the
// code has: spinqd's default ports, the public /api/health route, the flags
// of spinqd's and spinq-worker's --help, the token's environment variable,
// the programs `make install` installs. The units are hardened and, where
// systemd-analyze exists, `systemd-analyze verify` finds nothing in them.
import test from 'node:test';
import assert from 'node:assert';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { BIN, BUILD, ROOT } from './daemon.js';

const DEPLOY = path.join(ROOT, 'deploy');
const read = (p) => fs.readFileSync(path.join(ROOT, p), 'utf8');

// what the code says
const flagsOf = (bin, ...args) => {
  const r = spawnSync(BIN(bin), [...args, '--help'], { encoding: 'utf8' });
  assert.strictEqual(r.status, 0, `${bin} --help: ${r.stderr}`);
  return new Set(r.stdout.match(/--[a-z][a-z-]*/g));
};
const SPINQD_FLAGS = flagsOf('spinqd');
const WORKER_FLAGS = flagsOf('spinq-worker');
const configC = read('server/config.c');
const defaultPort = (field) => Number(new RegExp(`snprintf\\(c->${field}, sizeof c->${field}, "127\\.0\\.0\\.1:(\\d+)"\\)`)
  .exec(configC)[1]);
const HTTP_PORT = defaultPort('listen');
const WORKER_PORT = defaultPort('worker_listen');
const TOKEN_ENV = /getenv\("(SPINQ_WORKER_TOKEN)"\)/.exec(read('worker/main_worker.c'))[1];

test('the code has what the deploy files rely on', () => {
  assert.deepStrictEqual([HTTP_PORT, WORKER_PORT], [7070, 7071]);
  assert.match(read('server/http.c'), /\{"GET", "\/api\/health", ROLE_NONE,/, '/api/health is public');
  for (const f of ['--data-dir', '--listen', '--worker-listen', '--models-dir', '--datasets-dir', '--auth', '--config'])
    assert.ok(SPINQD_FLAGS.has(f), f);
  for (const f of ['--connect', '--token', '--models-dir', '--datasets-dir', '--name']) assert.ok(WORKER_FLAGS.has(f), f);
});

// ["--a", "1", "--b", "2"] -> {"--a": "1", "--b": "2"}, every flag checked against the program's
function flagMap(args, known, where) {
  const m = {};
  for (let i = 0; i < args.length; i += 2) {
    assert.ok(known.has(args[i]), `${where}: ${args[i]} is not a flag of the program (its --help)`);
    m[args[i]] = String(args[i + 1]);
  }
  return m;
}
const portOf = (hostport) => Number(hostport.split(':').pop());

function manifests() {
  const docs = [];
  for (const f of fs.readdirSync(path.join(DEPLOY, 'k8s')).filter((n) => n.endsWith('.yaml')).sort()) {
    for (const d of YAML.parseAllDocuments(fs.readFileSync(path.join(DEPLOY, 'k8s', f), 'utf8'))) {
      assert.deepStrictEqual(d.errors, [], `${f}: ${d.errors.join('; ')}`);
      const o = d.toJS();
      assert.ok(o.apiVersion && o.kind && o.metadata?.name, `${f}: a document without apiVersion, kind or name`);
      docs.push({ file: f, ...o });
    }
  }
  const one = (kind) => {
    const all = docs.filter((d) => d.kind === kind);
    assert.strictEqual(all.length, 1, `one ${kind} in deploy/k8s, got ${all.length}`);
    return all[0];
  };
  return { docs, one };
}

function mountAt(pod, container, dir) {
  const m = container.volumeMounts.find((v) => v.mountPath === dir);
  assert.ok(m, `${container.name}: nothing is mounted at ${dir}`);
  const vol = pod.volumes?.find((v) => v.name === m.name);
  return { mount: m, vol };
}

test('Kubernetes: the daemon as a StatefulSet with its data on a volume, a Service, workers with a Secret token', () => {
  const { one } = manifests();
  const sts = one('StatefulSet');
  const svc = one('Service');
  const dep = one('Deployment');
  const pvc = one('PersistentVolumeClaim');

  // the daemon: one replica (it owns its data dir), the data dir on a claim template
  assert.strictEqual(sts.spec.replicas, 1);
  assert.strictEqual(sts.spec.serviceName, svc.metadata.name);
  const pod = sts.spec.template.spec;
  assert.deepStrictEqual(sts.spec.selector.matchLabels, sts.spec.template.metadata.labels);
  const [d] = pod.containers;
  const args = flagMap(d.args, SPINQD_FLAGS, 'the StatefulSet');
  assert.strictEqual(args['--auth'], 'required', 'beyond loopback spinqd needs tokens');
  const ports = Object.fromEntries(d.ports.map((p) => [p.name, p.containerPort]));
  assert.strictEqual(portOf(args['--listen']), HTTP_PORT);
  assert.strictEqual(ports.http, HTTP_PORT);
  assert.strictEqual(portOf(args['--worker-listen']), WORKER_PORT);
  assert.strictEqual(ports.workers, WORKER_PORT);
  for (const probe of [d.readinessProbe, d.livenessProbe]) {
    assert.strictEqual(probe.httpGet.path, '/api/health');
    assert.ok(probe.httpGet.port === 'http' || probe.httpGet.port === HTTP_PORT, `probe port ${probe.httpGet.port}`);
  }
  const data = mountAt(pod, d, args['--data-dir']);
  assert.ok(sts.spec.volumeClaimTemplates.some((c) => c.metadata.name === data.mount.name),
    'the data dir is a persistent volume claimed per replica');
  for (const f of ['--models-dir', '--datasets-dir']) {
    assert.strictEqual(mountAt(pod, d, args[f]).vol.persistentVolumeClaim.claimName, pvc.metadata.name, f);
  }
  assert.ok(d.resources.requests.cpu && d.resources.requests.memory, 'the daemon states its requests');

  // the Service: the pods' label, both ports by name
  assert.deepStrictEqual(svc.spec.selector, sts.spec.template.metadata.labels);
  const svcPorts = Object.fromEntries(svc.spec.ports.map((p) => [p.targetPort, p.port]));
  assert.deepStrictEqual(svcPorts, { http: HTTP_PORT, workers: WORKER_PORT });

  // the workers: the installed spinq-worker, to the Service's worker port, the token from a Secret
  const wpod = dep.spec.template.spec;
  assert.deepStrictEqual(dep.spec.selector.matchLabels, dep.spec.template.metadata.labels);
  const [w] = wpod.containers;
  assert.deepStrictEqual(w.command, ['/usr/local/bin/spinq-worker']);
  const wargs = flagMap(w.args, WORKER_FLAGS, 'the Deployment');
  assert.strictEqual(wargs['--connect'], `${svc.metadata.name}:${WORKER_PORT}`);
  assert.ok(!('--token' in wargs), 'the token stays out of the command line');
  const tok = w.env.find((e) => e.name === TOKEN_ENV);
  assert.ok(tok?.valueFrom?.secretKeyRef?.name && tok.valueFrom.secretKeyRef.key, `${TOKEN_ENV} from a Secret`);
  for (const f of ['--models-dir', '--datasets-dir']) {
    assert.strictEqual(mountAt(wpod, w, wargs[f]).vol.persistentVolumeClaim.claimName, pvc.metadata.name, f);
  }
  assert.ok(w.resources.requests.cpu && w.resources.requests.memory, 'the workers state their requests');
  for (const c of [d, w]) assert.strictEqual(c.image, 'spinq:latest', 'the image deploy/Containerfile builds');
  for (const p of [pod, wpod]) assert.strictEqual(p.securityContext.runAsNonRoot, true);
});

test('Containerfile: multi-stage on Debian bookworm, non-root, health check, volumes, what the manifests run', () => {
  const text = read('deploy/Containerfile').replace(/\\\n/g, ' ');
  const lines = text.split('\n').filter((l) => l && !l.startsWith('#'));
  const instr = (name) => lines.filter((l) => l.startsWith(`${name} `)).map((l) => l.slice(name.length + 1).trim());
  const from = instr('FROM');
  assert.ok(from.length >= 2, 'multi-stage');
  for (const f of from) assert.match(f, /^debian:bookworm(-slim)?\b/);
  const stage = /\bAS (\w+)/.exec(from[0])[1];
  assert.ok(instr('COPY').some((c) => c.startsWith(`--from=${stage} `)), 'the last stage takes the build stage\'s install');
  for (const c of instr('COPY').filter((x) => !x.startsWith('--'))) {
    const src = c.split(/\s+/)[0];
    assert.ok(fs.existsSync(path.join(ROOT, src)), `COPY ${src}: no such file in the checkout`);
  }
  assert.match(text, /make install PREFIX=\/usr\/local DESTDIR=\/out/);
  const user = instr('USER').pop();
  assert.ok(user && user !== 'root' && user !== '0', `runs as ${user}`);

  const entry = JSON.parse(instr('ENTRYPOINT')[0]);
  assert.deepStrictEqual(entry, ['/usr/local/bin/spinqd']);
  const args = flagMap(JSON.parse(instr('CMD')[0]), SPINQD_FLAGS, 'CMD');
  assert.deepStrictEqual(instr('EXPOSE')[0].split(/\s+/).map(Number), [portOf(args['--listen']), portOf(args['--worker-listen'])]);
  assert.deepStrictEqual([portOf(args['--listen']), portOf(args['--worker-listen'])], [HTTP_PORT, WORKER_PORT]);
  const health = instr('HEALTHCHECK')[0];
  assert.ok(health.includes(`http://127.0.0.1:${HTTP_PORT}/api/health`), health);
  const volumes = JSON.parse(instr('VOLUME')[0]);
  for (const f of ['--data-dir', '--models-dir', '--datasets-dir']) assert.ok(volumes.includes(args[f]), `${f} ${args[f]} is a volume`);
  // the manifests run the image with the same folders
  const { one } = manifests();
  const k8s = flagMap(one('StatefulSet').spec.template.spec.containers[0].args, SPINQD_FLAGS, 'the StatefulSet');
  for (const f of ['--data-dir', '--models-dir', '--datasets-dir']) assert.strictEqual(k8s[f], args[f], f);
  const user10001 = /useradd [^&]*--uid (\d+)/.exec(text)[1];
  assert.strictEqual(String(one('StatefulSet').spec.template.spec.securityContext.runAsUser), user10001);
});

// key -> [values] of a unit file's [Service] section
function unitService(text) {
  const out = {};
  let section = '';
  for (const line of text.split('\n')) {
    const s = /^\[(\w+)\]$/.exec(line);
    if (s) { section = s[1]; continue; }
    const kv = /^(\w+)=(.*)$/.exec(line);
    if (kv && section === 'Service') (out[kv[1]] ||= []).push(kv[2]);
  }
  return out;
}

test('systemd: hardened units that run what make install installs', async (t) => {
  const prefix = fs.mkdtempSync(path.join(os.tmpdir(), 'spinq-units-'));
  t.after(() => fs.rmSync(prefix, { recursive: true, force: true }));
  // installed under a real prefix (no DESTDIR), so the units name files that exist
  const r = spawnSync('make', ['--no-print-directory', '-C', ROOT, 'install', `PREFIX=${prefix}`, `FLAVOUR=${BUILD}`],
    { encoding: 'utf8', timeout: 120000 });
  assert.strictEqual(r.status, 0, r.stdout + r.stderr);
  const sysusers = read('deploy/sysusers-spinq.conf');
  const user = /^u (\S+) /m.exec(sysusers)[1];
  const workerEnv = read('deploy/worker.env.example');

  for (const [unit, prog, known] of [['spinqd.service', 'spinqd', SPINQD_FLAGS],
    ['spinq-worker@.service', 'spinq-worker', WORKER_FLAGS]]) {
    const src = unitService(read(`deploy/${unit}`));
    const exec = src.ExecStart[0].split(/\s+/);
    assert.strictEqual(exec[0], `/usr/local/bin/${prog}`, `${unit} runs the installed ${prog}`);
    const flags = flagMap(exec.slice(1), known, unit);
    for (const [k, v] of [['User', user], ['ProtectSystem', 'strict'], ['ProtectHome', 'yes'], ['PrivateTmp', 'yes'],
      ['NoNewPrivileges', 'yes'], ['StandardOutput', 'journal'], ['StandardError', 'journal']]) {
      assert.deepStrictEqual(src[k], [v], `${unit}: ${k}=${v}`);
    }
    assert.ok(src.StateDirectory?.[0], `${unit}: StateDirectory`);
    assert.ok(Number(src.LimitNOFILE?.[0]) >= 4096, `${unit}: LimitNOFILE`);
    assert.ok(!src.DynamicUser, `${unit}: the ${user} user of sysusers.d, not a dynamic one`);

    // the installed copy names the installed files
    const inst = unitService(fs.readFileSync(path.join(prefix, 'lib/systemd/system', unit), 'utf8'));
    const bin = inst.ExecStart[0].split(/\s+/)[0];
    assert.strictEqual(bin, path.join(prefix, 'bin', prog));
    assert.ok(fs.statSync(bin).mode & 0o111, `${bin} is installed`);
    if (prog === 'spinqd') {
      assert.strictEqual(src.StateDirectory[0], 'spinq');
      assert.match(read('deploy/spinqd.conf.example'), /^data_dir += \/var\/lib\/spinq\b/m, 'the data dir is the state dir');
      assert.strictEqual(src.KillMode?.[0], 'mixed', 'SIGTERM to spinqd alone: it drains its workers');
      assert.ok(fs.existsSync(flagMap(inst.ExecStart[0].split(/\s+/).slice(1), known, unit)['--config']),
        'the installed unit\'s --config is the installed spinqd.conf');
    } else {
      assert.strictEqual(inst.EnvironmentFile[0], path.join(prefix, 'etc/spinq/worker.env'));
      assert.ok(fs.existsSync(`${inst.EnvironmentFile[0]}.example`), 'worker.env.example is installed beside it');
      const vars = [...src.ExecStart[0].matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]);
      for (const v of [...vars, TOKEN_ENV]) assert.match(workerEnv, new RegExp(`^${v}=`, 'm'), `worker.env.example sets ${v}`);
      assert.ok(!('--token' in flags), 'the token comes from the environment');
    }
  }

  const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  const skip = analyze.error && `systemd-analyze is not installed (${analyze.error.code}): the units are not verified`;
  await t.test('systemd-analyze verify finds nothing', { skip }, () => {
    for (const unit of ['spinqd.service', 'spinq-worker@.service']) {
      const v = spawnSync('systemd-analyze', ['verify', path.join(prefix, 'lib/systemd/system', unit)],
        { encoding: 'utf8', timeout: 60000 });
      assert.strictEqual(v.status, 0, `systemd-analyze verify ${unit}:\n${v.stdout}${v.stderr}`);
      assert.strictEqual(v.stderr.trim(), '', `systemd-analyze verify ${unit} says:\n${v.stderr}`);
    }
  });
});
