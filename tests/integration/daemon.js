// daemon.js - helpers for the spinqd integration tests: a real daemon on a
// free loopback port with a temp data dir, HTTP requests, SSE clients.
//
// The sanitizer build is used when it exists (SPINQ_BUILD=rel|asan to
// choose): the daemon and its workers then run under ASan/UBSan, and a
// daemon that leaks or trips a check exits non-zero, which stop() reports.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const __dirname = path.dirname(fileURLToPath(import.meta.url));

const ROOT = path.resolve(__dirname, '..', '..');
const SHARED = process.env.SPINQ_SHARED || path.resolve(ROOT, '..', 'shared');
const BUILD = process.env.SPINQ_BUILD ||
  (fs.existsSync(path.join(ROOT, 'build/asan/spinqd')) && fs.existsSync(path.join(ROOT, 'build/asan/spinq-worker'))
    ? 'asan' : 'rel');
const BIN = (name) => path.join(ROOT, 'build', BUILD, name);

// A spec for a short job on stories260K: load + full-precision perplexity
// over `windows` windows of the test text.
function tinySpec(extra = {}) {
  const spec = {
    model: 'stories260K',
    rotation: { mode: 'none' },
    quant: { w_bits: 16, a_bits: 16, kv_bits: 16 },
    weights: { method: 'none' },
    eval: { ppl: [{ data: 'tinystories/test.txt', seqlen: 128 }], kld: false, tasks: [], limit: 4 },
  };
  return deepMerge(spec, extra);
}

// A short SpinQuant job on stories260K: `steps` steps of learning (a
// checkpoint every 3), 4-bit RTN weights, perplexity over 2 windows.
const learnSpec = (steps, extra = {}) => tinySpec({
  seed: 7,
  rotation: { mode: 'spinquant', train: { steps, batch: 1, seqlen: 32, checkpoint_every: 3, w_bits: 4 } },
  quant: { w_bits: 4, a_bits: 4, kv_bits: 4 },
  weights: { method: 'rtn' },
  eval: { ppl: [{ data: 'tinystories/test.txt', seqlen: 64 }], limit: 2 },
  ...extra,
});

// A spec that exercises every section, so that every field path exists.
const fullSpec = (extra = {}) => deepMerge(tinySpec({
  name: 'full', tags: ['a'], seed: 1,
  quant: { w_bits: 16, w_sym: true, w_groupsize: 0, w_clip: true, a_bits: 16, a_clip: 1.0, kv_bits: 16, kv_clip: 1.0 },
  rotation: { mode: 'none', online_had: true, init: 'hadamard',
    train: { steps: 2, lr: 1.5, batch: 1, seqlen: 64, calib: 'tinystories/calib.txt', w_bits: 16, checkpoint_every: 1 } },
  weights: { method: 'none', calib: 'tinystories/calib.txt', nsamples: 4, seqlen: 64, damp: 0.01, act_order: false,
    blocksize: 128 },
  eval: { ppl: [{ data: 'tinystories/test.txt', seqlen: 64 }], kld: false,
    tasks: [{ name: 'arc_easy', data: 'eval/arc/ARC-Easy-Test.jsonl' }], limit: 1 },
}), extra);

function deepMerge(a, b) {
  const out = Array.isArray(a) ? [...a] : { ...a };
  for (const [k, v] of Object.entries(b)) {
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && a[k] && typeof a[k] === 'object' ? deepMerge(a[k], v) : v;
  }
  return out;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(fn, timeoutMs, what) {
  const t0 = Date.now();
  let last;
  while (Date.now() - t0 < timeoutMs) {
    last = await fn();
    if (last) return last;
    await sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

class Daemon {
  constructor(opts = {}) {
    this.workers = opts.workers ?? 1;
    this.dataDir = opts.dataDir || fs.mkdtempSync(path.join(os.tmpdir(), 'spinqd-test-'));
    this.extra = opts.args || [];
    this.bin = opts.bin || BIN('spinqd'); // an installed spinqd: its workers and dashboard are found beside it
    this.log = '';
    this.proc = null;
  }

  args() {
    return ['--data-dir', this.dataDir, '--listen', `127.0.0.1:${this.port}`,
      '--worker-listen', `127.0.0.1:${this.workerPort}`, '--workers', String(this.workers),
      '--models-dir', path.join(SHARED, 'models'), '--datasets-dir', path.join(SHARED, 'data'),
      '--shutdown-grace', '10', ...this.extra];
  }

  async start() {
    if (!this.port) {
      this.port = await freePort();
      this.workerPort = await freePort();
    }
    this.log = '';
    const p = spawn(this.bin, this.args(), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = p;
    p.stdout.on('data', (d) => { this.log += d; });
    p.stderr.on('data', (d) => { this.log += d; });
    this.exited = new Promise((resolve) => p.on('exit', (code, signal) => resolve({ code, signal })));
    await waitFor(async () => {
      if (p.exitCode !== null) throw new Error(`spinqd exited at start:\n${this.log}`);
      try { return (await this.req('GET', '/api/health')).status === 200; } catch { return false; }
    }, 20000, 'spinqd to answer /api/health');
    if (this.workers > 0) {
      await waitFor(async () => (await this.req('GET', '/api/health')).json.workers.connected >= this.workers,
        30000, `${this.workers} local workers to connect`);
    }
    return this;
  }

  // SIGTERM (drain) and wait; returns {code, signal}.
  async stop(signal = 'SIGTERM') {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode) return this.exited;
    this.proc.kill(signal);
    return this.exited;
  }

  kill9() { this.proc.kill('SIGKILL'); return this.exited; }

  cleanup() { fs.rmSync(this.dataDir, { recursive: true, force: true }); }

  // One request; resolves {status, headers, body (Buffer), json (or null)}.
  req(method, p, body, token, extraHeaders = {}) {
    return request(this.port, method, p, body, token, extraHeaders);
  }

  token(name, role) {
    const r = spawnSync(this.bin, ['token', 'create', name, '--role', role, '--data-dir', this.dataDir],
      { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`token create failed: ${r.stderr}`);
    return r.stdout.trim();
  }

  async run(id) { return (await this.req('GET', `/api/runs/${id}`)).json; }

  async waitRun(id, statuses, timeoutMs = 60000) {
    return waitFor(async () => {
      const r = await this.run(id);
      return statuses.includes(r.status) ? r : null;
    }, timeoutMs, `run ${id} to become ${statuses.join('/')}`);
  }
}

function request(port, method, p, body, token, extraHeaders = {}) {
  return new Promise((resolve, reject) => {
    const headers = { ...extraHeaders };
    let data = null;
    if (body !== undefined && body !== null) {
      data = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
      headers['Content-Type'] = headers['Content-Type'] || 'application/json';
      headers['Content-Length'] = data.length;
    }
    if (token) headers.Authorization = `Bearer ${token}`;
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        let json = null;
        if ((res.headers['content-type'] || '').includes('json')) {
          try { json = JSON.parse(buf.toString('utf8')); } catch { json = null; }
        }
        resolve({ status: res.statusCode, headers: res.headers, body: buf, json });
      });
    });
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

// An SSE client: collects {id, event, data} in .events as they arrive.
class Sse {
  constructor(port, p, { lastEventId, token } = {}) {
    this.events = [];
    this.received = [];
    const headers = { Accept: 'text/event-stream' };
    if (lastEventId !== undefined) headers['Last-Event-ID'] = String(lastEventId);
    if (token) headers.Authorization = `Bearer ${token}`;
    let buf = '';
    this.ready = new Promise((resolve, reject) => {
      this.req = http.get({ host: '127.0.0.1', port, path: p, headers, agent: false }, (res) => {
        this.status = res.statusCode;
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          buf += chunk;
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const ev = {};
            for (const line of block.split('\n')) {
              const m = /^(\w+): ?(.*)$/.exec(line);
              if (m) ev[m[1]] = m[2];
            }
            if (ev.data !== undefined) {
              ev.data = JSON.parse(ev.data);
              if (ev.id !== undefined) ev.id = Number(ev.id); // a run stream's final `end` has none
              ev.at = Date.now();
              this.events.push(ev);
            }
          }
        });
        resolve(res);
      });
      this.req.on('error', (e) => { if (!this.closed) reject(e); });
    });
  }

  waitFor(pred, timeoutMs, what) {
    return waitFor(async () => this.events.find(pred), timeoutMs, what);
  }

  close() { this.closed = true; this.req.destroy(); }
}

export { Daemon, Sse, tinySpec, learnSpec, fullSpec, request, waitFor, sleep, freePort, BIN, SHARED, ROOT, BUILD };
