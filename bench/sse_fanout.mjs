// sse_fanout.mjs PORT [CLIENTS] - SSE fan-out figures against a running
// spinqd with at least one worker: CLIENTS subscribers on the global stream,
// one real job (fp32 perplexity with per-window progress) produces the
// events; each client measures, per event, the delay from the event's commit
// (its "t", wall clock, same machine) to its arrival. Prints one JSON object.
import http from 'node:http';

const port = Number(process.argv[2]);
const n = Number(process.argv[3] || 200);
const clients = [];

function connect() {
  return new Promise((resolve, reject) => {
    const c = { delays: [], events: 0, done: false, buf: '' };
    c.req = http.get({ host: '127.0.0.1', port, path: '/api/events', agent: false,
      headers: { Accept: 'text/event-stream' } }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        const now = Date.now() / 1000;
        c.buf += chunk;
        let i;
        while ((i = c.buf.indexOf('\n\n')) >= 0) {
          const block = c.buf.slice(0, i);
          c.buf = c.buf.slice(i + 2);
          const line = block.split('\n').find((l) => l.startsWith('data: '));
          if (!line) continue;
          const data = JSON.parse(line.slice(6));
          if (data.run_id !== c.run) continue;
          c.events++;
          c.delays.push((now - data.t) * 1000);
          if (data.status === 'done' || data.status === 'failed') c.done = true;
        }
      });
      resolve(c);
    });
    c.req.on('error', reject);
  });
}

function post(path, body) {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': data.length } }, (res) => {
      let s = '';
      res.on('data', (d) => { s += d; });
      res.on('end', () => resolve(JSON.parse(s)));
    });
    req.on('error', reject);
    req.end(data);
  });
}

const pct = (a, p) => a[Math.min(a.length - 1, Math.floor((p / 100) * a.length))];

for (let i = 0; i < n; i++) clients.push(await connect());
await new Promise((r) => setTimeout(r, 500));
const run = await post('/api/runs', {
  model: 'stories260K', name: 'sse fan-out bench', rotation: { mode: 'none' },
  quant: { w_bits: 16, a_bits: 16, kv_bits: 16 }, weights: { method: 'none' },
  eval: { ppl: [{ data: 'tinystories/test.txt', seqlen: 128 }], kld: false, tasks: [], limit: 400 },
});
for (const c of clients) c.run = run.id;
const t0 = Date.now();
while (!clients.every((c) => c.done) && Date.now() - t0 < 120000) await new Promise((r) => setTimeout(r, 100));
const delays = clients.flatMap((c) => c.delays).sort((a, b) => a - b);
const counts = clients.map((c) => c.events);
console.log(JSON.stringify({
  clients: n, completed: clients.filter((c) => c.done).length,
  events_per_client_min: Math.min(...counts), events_per_client_max: Math.max(...counts),
  deliveries: delays.length,
  delay_ms: { p50: +pct(delays, 50).toFixed(3), p99: +pct(delays, 99).toFixed(3), max: +delays[delays.length - 1].toFixed(3) },
}));
for (const c of clients) c.req.destroy();
