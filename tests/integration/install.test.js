// install.test.js - `make install` into a staging dir (DESTDIR, PREFIX
// /usr/local) and the installed tree at work: the installed spinqd, started
// with the installed config (auth required) and nothing from the checkout but
// the shared models, serves the installed dashboard and runs a stories260K
// job on the installed spinq-worker; each installed program's --help says
// what the README says; `make uninstall` leaves no file behind, and keeps a
// spinqd.conf the admin edited. The build flavour the other tests use is
// installed (FLAVOUR=asan when it exists), so the daemon's clean exit is
// also a leak check.
import test from 'node:test';
import assert from 'node:assert';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Daemon, tinySpec, BUILD, ROOT } from './daemon.js';

const PREFIX = '/usr/local';
const PROGRAMS = ['spinq', 'spinq-worker', 'spinqd'];

function make(target, destdir) {
  const r = spawnSync('make', ['--no-print-directory', '-C', ROOT, target, `DESTDIR=${destdir}`, `PREFIX=${PREFIX}`,
    `FLAVOUR=${BUILD}`], { encoding: 'utf8', timeout: 120000 });
  assert.strictEqual(r.status, 0, `make ${target} failed:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

// every file (not folder) under dir, relative to it
function files(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isDirectory()) out.push(path.relative(dir, path.join(e.parentPath, e.name)));
  }
  return out.sort();
}

function run(bin, args) {
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 30000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

// the pids of proc's children whose program is `name`, with the file each runs
function children(pid, name) {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const exe = fs.readlinkSync(`/proc/${d}/exe`);
      if (ppid === pid && path.basename(exe) === name) out.push(exe);
    } catch { /* gone meanwhile */ }
  }
  return out;
}

test('make install: the installed spinqd serves the dashboard and runs a job; make uninstall removes it all', async (t) => {
  const dest = fs.mkdtempSync(path.join(os.tmpdir(), 'spinq-install-'));
  t.after(() => fs.rmSync(dest, { recursive: true, force: true }));
  make('install', dest);
  const root = path.join(dest, PREFIX.slice(1));
  const bin = (p) => path.join(root, 'bin', p);
  const web = path.join(root, 'share/spinq/web');
  const conf = path.join(root, 'etc/spinq/spinqd.conf');

  await t.test('the tree', () => {
    const got = files(dest);
    for (const want of [...PROGRAMS.map((p) => `usr/local/bin/${p}`), 'usr/local/share/spinq/web/index.html',
      'usr/local/share/spinq/web/js/app.js', 'usr/local/share/spinq/web/js/pages/run.js',
      'usr/local/share/spinq/web/node_modules/uplot/dist/uPlot.esm.js', 'usr/local/etc/spinq/spinqd.conf',
      'usr/local/etc/spinq/spinqd.conf.example', 'usr/local/etc/spinq/worker.env.example',
      'usr/local/lib/systemd/system/spinqd.service', 'usr/local/lib/systemd/system/spinq-worker@.service',
      'usr/local/lib/sysusers.d/spinq.conf']) {
      assert.ok(got.includes(want), `${want} is not installed; got:\n${got.join('\n')}`);
    }
    assert.ok(!got.some((f) => /package(-lock)?\.json$/.test(f)), 'npm files stay in the checkout');
    for (const p of PROGRAMS) assert.ok(fs.statSync(bin(p)).mode & 0o111, `${p} is not executable`);
    // the units run the installed programs with the installed config
    const unit = fs.readFileSync(path.join(root, 'lib/systemd/system/spinqd.service'), 'utf8');
    assert.match(unit, /^ExecStart=\/usr\/local\/bin\/spinqd --config \/usr\/local\/etc\/spinq\/spinqd\.conf$/m);
    const wunit = fs.readFileSync(path.join(root, 'lib/systemd/system/spinq-worker@.service'), 'utf8');
    assert.match(wunit, /^ExecStart=\/usr\/local\/bin\/spinq-worker /m);
    assert.match(wunit, /^EnvironmentFile=\/usr\/local\/etc\/spinq\/worker\.env$/m);
  });

  await t.test('the installed spinqd, with the installed config, serves the dashboard and runs a job', async (t) => {
    // --config first: the flags after it take the test's data dir and ports;
    // auth stays required (the config's), the workers and web dir are found beside the binary
    const d = await new Daemon({ bin: bin('spinqd'), workers: 1, args: ['--config', conf] }).start();
    t.after(async () => { await d.stop(); d.cleanup(); });
    assert.match(d.log, new RegExp(`dashboard: ${web.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), d.log);
    const workers = children(d.proc.pid, 'spinq-worker');
    assert.deepStrictEqual(workers, [bin('spinq-worker')], 'the local worker is the installed one');

    const health = await d.req('GET', '/api/health');
    assert.strictEqual(health.status, 200);
    assert.strictEqual(health.json.status, 'ok');
    assert.strictEqual(health.json.auth, true, 'the installed config requires tokens');
    assert.strictEqual((await d.req('GET', '/api/runs')).status, 401);

    const index = await d.req('GET', '/');
    assert.strictEqual(index.status, 200);
    assert.match(index.headers['content-type'], /^text\/html/);
    assert.strictEqual(index.body.toString(), fs.readFileSync(path.join(web, 'index.html'), 'utf8'));
    const uplot = await d.req('GET', '/vendor/uplot/uPlot.esm.js');
    assert.strictEqual(uplot.status, 200, 'the charts\' library is installed with the pages');

    const tok = run(bin('spinqd'), ['token', 'create', 'installer', '--role', 'member', '--config', conf,
      '--data-dir', d.dataDir]);
    assert.strictEqual(tok.code, 0, tok.err);
    const token = tok.out.trim();
    const created = await d.req('POST', '/api/runs', tinySpec({ name: 'installed' }), token);
    assert.strictEqual(created.status, 201, created.body.toString());
    const id = created.json.id;
    const done = await (async () => {
      for (let i = 0; i < 600; i++) {
        const r = (await d.req('GET', `/api/runs/${id}`, null, token)).json;
        if (['done', 'failed', 'canceled'].includes(r.status)) return r;
        await new Promise((res) => setTimeout(res, 100));
      }
      throw new Error(`run ${id} did not finish:\n${d.log.slice(-3000)}`);
    })();
    assert.strictEqual(done.status, 'done', JSON.stringify(done));
    const arts = (await d.req('GET', `/api/runs/${id}/artifacts`, null, token)).json.artifacts;
    assert.ok(arts.some((a) => a.name === 'results.json'), JSON.stringify(arts));
    const { code, signal } = await d.stop();
    assert.strictEqual(code, 0, `spinqd exited ${code ?? signal}:\n${d.log.slice(-3000)}`);
  });

  await t.test('--help of each installed program says what the README says', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const help = (p, ...args) => {
      const r = run(bin(p), [...args, '--help']);
      assert.strictEqual(r.code, 0, `${p} ${args.join(' ')} --help exits ${r.code}: ${r.err}`);
      assert.ok(r.out.length > 0, `${p} --help prints on stdout`);
      return r.out;
    };

    // spinq: the commands of the help are those the README runs
    const spinqHelp = help('spinq');
    const commands = new Set([...spinqHelp.matchAll(/^ {2}spinq ([a-z][a-z-]*)/gm)].map((m) => m[1]));
    const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]).join('\n').replace(/#.*/g, '');
    const used = new Set([...blocks.matchAll(/(?:^|[\s/])spinq ([a-z][a-z-]*)/gm)].map((m) => m[1]));
    for (const c of used) assert.ok(commands.has(c), `the README runs "spinq ${c}", which spinq --help lacks`);
    for (const c of commands) assert.ok(readme.includes(`spinq ${c}`), `spinq --help lists "${c}"; the README never names it`);

    // spinqd: the defaults and commands the README states
    const spinqdHelp = help('spinqd');
    for (const [inReadme, inHelp] of [
      [/API on `http:\/\/127\.0\.0\.1:7070`/, /--listen HOST:PORT +HTTP API \(default 127\.0\.0\.1:7070/],
      [/remote workers on `127\.0\.0\.1:7071`/, /--worker-listen .*\(default 127\.0\.0\.1:7071/],
      [/data in `\.\/data`/, /--data-dir DIR .*\(default \.\/data\)/],
      [/2 supervised local\s+workers/, /--workers N .*\(default 2\)/],
      [/named relative\s+to `\.\.\/shared\/models` and `\.\.\/shared\/data`/, /--models-dir DIR[\s\S]*\.\.\/shared\/models/],
      [/`PREFIX\/share\/spinq\/web`\s+beside `PREFIX\/bin\/spinqd`, or where `--web-dir` says/,
        /--web-dir DIR[\s\S]*PREFIX\/share\/spinq\/web beside PREFIX\/bin\/spinqd/],
      [/spinqd token create NAME --role admin\|member\|viewer\|worker/, /spinqd token create NAME --role ROLE[\s\S]*roles: admin, member, viewer \(API\), worker/],
      [/`spinqd token \.\.\.`/, /spinqd token list[\s\S]*spinqd token revoke NAME/],
    ]) {
      assert.match(readme, inReadme);
      assert.match(spinqdHelp, inHelp);
    }

    // spinq-worker: every flag the README gives it is in its help (serve's for serve)
    const workerHelp = help('spinq-worker');
    const serveHelp = help('spinq-worker', 'serve');
    const lines = readme.split('\n').filter((l) => /spinq-worker (--|serve )/.test(l));
    assert.ok(lines.length >= 3, 'the README shows spinq-worker at work');
    for (const l of lines) {
      const serve = /spinq-worker serve /.test(l);
      for (const [flag] of l.matchAll(/--[a-z][a-z-]*/g)) {
        if (serve && /--(w|a|kv)-bits|--rotation/.test(flag)) continue; // spinq ppl's flags, as both say
        assert.ok((serve ? serveHelp : workerHelp).includes(flag), `README: "${l.trim()}": ${flag} is not in the help`);
      }
    }
    assert.match(readme, /`--queue` \(default 4 × slots\)/);
    assert.match(serveHelp, /--queue N .*\(default 4 x slots\)/);
    assert.match(readme, /the quantization and rotation\s+flags of `spinq ppl`/);
    assert.match(serveHelp, /the quantization and rotation flags are spinq ppl's/);
  });

  make('uninstall', dest);
  assert.deepStrictEqual(files(dest), [], 'make uninstall left files behind');
  assert.ok(!fs.existsSync(path.join(root, 'share/spinq')), 'share/spinq goes with its files');
  assert.ok(!fs.existsSync(path.join(root, 'etc/spinq')), 'etc/spinq goes with its files');
});

test('make install keeps an edited spinqd.conf, and so does make uninstall', (t) => {
  const dest = fs.mkdtempSync(path.join(os.tmpdir(), 'spinq-install-'));
  t.after(() => fs.rmSync(dest, { recursive: true, force: true }));
  make('install', dest);
  const conf = path.join(dest, 'usr/local/etc/spinq/spinqd.conf');
  fs.appendFileSync(conf, 'workers = 4\n');
  const edited = fs.readFileSync(conf, 'utf8');
  make('install', dest);
  assert.strictEqual(fs.readFileSync(conf, 'utf8'), edited, 'a second install overwrote the admin\'s config');
  assert.match(make('uninstall', dest), /spinqd\.conf was edited: kept/);
  assert.deepStrictEqual(files(dest), ['usr/local/etc/spinq/spinqd.conf']);
});
