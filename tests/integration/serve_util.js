// serve_util.js - starting `spinq-worker serve` for the tests and waiting
// on what it reports (its "listening on" line, /health, /slots, /metrics).
import { spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, "../..");
export const shared = path.resolve(process.env.SPINQ_SHARED ?? path.join(root, "../shared"));
export const workerBin = process.env.SPINQ_WORKER_BIN ?? path.join(root, "build/asan/spinq-worker");
export const spinqBin = process.env.SPINQ_BIN ?? path.join(root, "build/asan/spinq");
export const BIN = path.join(shared, "models/stories260K/stories260K.bin");
export const HF = path.join(shared, "models/stories260K-hf");

// Starts a server on a free port; resolves once /health says ok.
export async function startServer(model, ...flags) {
  const proc = spawn(workerBin, ["serve", model, "--listen", "127.0.0.1:0", ...flags], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  proc.stderr.on("data", (d) => (err += d));
  let out = "";
  const url = await new Promise((resolve, reject) => {
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    proc.on("exit", (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
  const s = { proc, url, stderr: () => err };
  s.stop = async () => {
    if (proc.exitCode === null) {
      proc.kill("SIGTERM");
      await once(proc, "exit");
    }
  };
  for (;;) {
    const r = await fetch(`${url}/health`);
    if (r.status === 200) return s;
    if (r.status !== 503) throw new Error(`health ${r.status}: ${await r.text()}`);
    await new Promise((res) => setImmediate(res));
  }
}

export async function metrics(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = {};
  for (const line of text.split("\n")) {
    const x = line.match(/^spinq_(\w+) ([\d.e+-]+)$/);
    if (x) m[x[1]] = Number(x[2]);
  }
  return m;
}

// Polls until pred(value of get()) holds; fails with the last value after `ms`.
export async function waitFor(get, pred, what, ms = 60000) {
  const t0 = Date.now();
  let v;
  for (;;) {
    v = await get();
    if (pred(v)) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

export async function slotsIdle(url) {
  return waitFor(
    async () => (await fetch(`${url}/slots`)).json(),
    (s) => s.every((x) => !x.is_processing),
    "every slot idle",
  );
}

export async function post(url, route, body, headers = {}) {
  const r = await fetch(`${url}${route}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: r.status, json, text, headers: r.headers };
}

// Reads an SSE response into its data payloads (until [DONE] or the end).
export async function readSSE(res) {
  const dec = new TextDecoder();
  let buf = "";
  const events = [];
  for await (const chunk of res.body) {
    buf += dec.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (ev.startsWith("data: ")) events.push(ev.slice(6));
    }
  }
  return events;
}
