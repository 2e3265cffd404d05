// fill_runs.mjs PORT N - posts small job specs until the store holds N runs
// (16 requests in flight). Used by bench/http.sh to fill the store.
import http from 'node:http';

const port = Number(process.argv[2]);
const want = Number(process.argv[3]);
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
const body = Buffer.from(JSON.stringify({
  model: 'stories260K', name: 'bench fill', tags: ['bench'], rotation: { mode: 'none' },
  quant: { w_bits: 16, a_bits: 16, kv_bits: 16 }, weights: { method: 'none' },
  eval: { ppl: [{ data: 'tinystories/test.txt', seqlen: 128 }], kld: false, tasks: [], limit: 1 },
}));

function req(method, path, data) {
  return new Promise((resolve, reject) => {
    const r = http.request({ host: '127.0.0.1', port, method, path, agent,
      headers: data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {} }, (res) => {
      let s = '';
      res.on('data', (d) => { s += d; });
      res.on('end', () => (res.statusCode < 300 ? resolve(JSON.parse(s)) : reject(new Error(`${res.statusCode} ${s}`))));
    });
    r.on('error', reject);
    r.end(data);
  });
}

let missing = want - (await req('GET', '/api/runs?limit=1')).total;
await Promise.all(Array.from({ length: 16 }, async () => {
  while (missing-- > 0) await req('POST', '/api/runs', body);
}));
agent.destroy();
