// dashboard.test.js - the dashboard in a real headless Chromium (Debian's
// chromium, driven by playwright-core) against a real spinqd on a free
// loopback port: the runs table lists, filters, sorts and follows the global
// event stream; a run page draws its loss curve while the rotations learn
// and shows the final scores and files; the compare view overlays two runs;
// a spec with a wrong field is refused with the field named; a sweep's page
// orders its runs best first; the loss curve has a smoothing slider (EMA
// over the faint raw curve), scores are listed once each, a finished run
// names its worker and host, the compare view's spec differences skip
// fields a run does not use; a daemon without uPlot says so on the page; a viewer's
// cancel is answered 403 on the page; and the static file server answers
// with the right types and caching and never leaves web/.
//
// Assertions read DOM state (text, data-* attributes the pages keep, e.g.
// the chart's data-points), never pixels.
import test from 'node:test';
import assert from 'node:assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { Daemon, tinySpec, waitFor, ROOT } from './daemon.js';

const CHROMIUM = process.env.SPINQ_CHROMIUM || '/usr/bin/chromium';

async function launch() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'spinq-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return { ctx, page, errors, close };
}

const learnSpec = (name, steps) => tinySpec({
  name,
  seed: 3,
  rotation: { mode: 'spinquant', train: { steps, batch: 1, seqlen: 32, checkpoint_every: 5, w_bits: 4 } },
  quant: { w_bits: 4, a_bits: 4, kv_bits: 4 },
  weights: { method: 'rtn' },
  eval: { ppl: [{ data: 'tinystories/test.txt', seqlen: 64 }], limit: 2 },
});

const rowIds = (page) => page.$$eval('table.runs tbody tr[data-run-id]', (trs) => trs.map((t) => Number(t.dataset.runId)));
const cells = (page, col) => page.$$eval(`table.runs tbody td[data-col="${col}"]`, (tds) => tds.map((t) => t.textContent));

test('the dashboard against a real daemon', { timeout: 170000 }, async (t) => {
  const d = await new Daemon({ workers: 2 }).start();
  t.after(async () => { await d.stop(); d.cleanup(); });
  const b = await launch();
  t.after(() => b.close());
  const page = b.page;
  const url = (p) => `http://127.0.0.1:${d.port}${p}`;
  let learnId, shortId;

  await t.test('static files: types, caching, page routes, 404s, no way out of web/', async () => {
    const idx = await d.req('GET', '/');
    assert.strictEqual(idx.status, 200);
    assert.match(idx.headers['content-type'], /^text\/html/);
    assert.strictEqual(idx.headers['cache-control'], 'no-cache');
    assert.match(idx.headers['content-security-policy'], /script-src 'self'/);
    const deep = await d.req('GET', '/runs/12345');
    assert.strictEqual(deep.status, 200, 'a page route answers with the page');
    assert.ok(deep.body.equals(idx.body));
    for (const [p, type] of [['/style.css', /^text\/css/], ['/js/app.js', /^text\/javascript/],
      ['/vendor/uplot/uPlot.esm.js', /^text\/javascript/], ['/vendor/uplot/uPlot.min.css', /^text\/css/]]) {
      const r = await d.req('GET', p);
      assert.strictEqual(r.status, 200, p);
      assert.match(r.headers['content-type'], type, p);
      assert.strictEqual(r.headers['x-content-type-options'], 'nosniff');
      const again = await d.req('GET', p, undefined, undefined, { 'If-None-Match': r.headers.etag });
      assert.strictEqual(again.status, 304, `${p} revalidates`);
      assert.strictEqual(again.body.length, 0);
    }
    const head = await d.req('HEAD', '/style.css');
    assert.strictEqual(head.status, 200);
    assert.strictEqual((await d.req('GET', '/no-such.js')).status, 404);
    assert.strictEqual((await d.req('GET', '/no-such.js')).json.error.code, 'not_found');
    const post = await d.req('POST', '/style.css', 'x');
    assert.strictEqual(post.status, 405);
    assert.strictEqual((await d.req('GET', '/api/nope')).json.error.code, 'not_found', '/api stays the API\'s');
    const secrets = [fs.readFileSync(path.join(ROOT, 'Makefile')), fs.readFileSync(path.join(ROOT, 'web', 'package.json'))];
    const evil = ['/../Makefile', '/%2e%2e/Makefile', '/js/../../Makefile', '/js/%2e%2e/%2e%2e/Makefile',
      '/..%2fMakefile', '/vendor/uplot/../../../../Makefile', '/vendor/uplot/%2e%2e/%2e%2e/%2e%2e/package.json',
      '/package.json', '/node_modules/uplot/package.json', '/.gitignore', '/js/.%2e/.%2e/Makefile', '//etc/passwd',
      '/%2fetc%2fpasswd', '/js%5c..%5c..%5cMakefile', '/../../../../../../etc/passwd', '/js/%00/../../Makefile'];
    for (const p of evil) {
      const r = await d.req('GET', p);
      assert.ok(r.status === 404 || r.status === 400, `${p} -> ${r.status}`);
      for (const s of secrets) assert.ok(!r.body.includes(s), `${p} leaked a file`);
      assert.ok(!r.body.includes('root:'), `${p} leaked /etc/passwd`);
    }
    // libmicrohttpd decodes %00 and would end the path there: a control character in a path is a 400
    for (const p of ['/style.css%00/../../Makefile', '/index.html%00.png', '/style.css%0a', '/js/app.js%7F']) {
      const nul = await d.req('GET', p);
      assert.strictEqual(nul.status, 400, p);
      assert.deepStrictEqual([nul.json.error.code, nul.json.error.field], ['invalid_path', 'path'], p);
    }
    // a symlink inside the web dir that leads out is refused too
    const web = fs.mkdtempSync(path.join(os.tmpdir(), 'spinq-web-'));
    fs.writeFileSync(path.join(web, 'index.html'), '<!doctype html><title>t</title>');
    fs.writeFileSync(path.join(path.dirname(web), `${path.basename(web)}-secret.txt`), 'top secret');
    fs.symlinkSync(`../${path.basename(web)}-secret.txt`, path.join(web, 'leak.txt'));
    fs.writeFileSync(path.join(web, 'ok.txt'), 'fine');
    const d2 = await new Daemon({ workers: 0, args: ['--web-dir', web] }).start();
    try {
      assert.strictEqual((await d2.req('GET', '/ok.txt')).body.toString(), 'fine');
      const leak = await d2.req('GET', '/leak.txt');
      assert.strictEqual(leak.status, 404);
      assert.ok(!leak.body.includes('top secret'));
      assert.match((await d2.req('GET', '/vendor/uplot/uPlot.esm.js')).json.error.message, /no such file/);
    } finally {
      const { code } = await d2.stop();
      d2.cleanup();
      fs.rmSync(web, { recursive: true, force: true });
      fs.rmSync(path.join(path.dirname(web), `${path.basename(web)}-secret.txt`), { force: true });
      assert.strictEqual(code, 0, d2.log.slice(-2000));
    }
  });

  await t.test('without uPlot the page says the charts are off', async () => {
    const web = fs.mkdtempSync(path.join(os.tmpdir(), 'spinq-web-plain-'));
    for (const f of ['index.html', 'style.css', 'favicon.svg', 'js'])
      fs.cpSync(path.join(ROOT, 'web', f), path.join(web, f), { recursive: true });
    const d3 = await new Daemon({ workers: 0, args: ['--web-dir', web] }).start();
    try {
      assert.match(d3.log, /lacks uPlot/, 'the log says it');
      const p3 = await b.ctx.newPage();
      await p3.goto(`http://127.0.0.1:${d3.port}/`);
      await p3.waitForSelector('#charts-missing:not([hidden])', { timeout: 10000 });
      assert.match(await p3.textContent('#charts-missing'), /Charts are off.*make deps/s);
      await p3.waitForSelector('table.runs');
      await p3.close();
    } finally {
      const { code } = await d3.stop();
      d3.cleanup();
      fs.rmSync(web, { recursive: true, force: true });
      assert.strictEqual(code, 0, d3.log.slice(-2000));
    }
  });

  const tiny = {};
  await t.test('runs table: lists, filters, sorts by a metric, follows the event stream', async () => {
    for (const [name, tag, limit] of [['alpha', 'blue', 1], ['beta', 'red', 3], ['gamma', 'blue', 2]]) {
      const r = await d.req('POST', '/api/runs', tinySpec({ name, tags: [tag, 'tiny'], eval: { limit } }));
      assert.strictEqual(r.status, 201, JSON.stringify(r.json));
      tiny[name] = r.json.id;
    }
    for (const id of Object.values(tiny)) assert.strictEqual((await d.waitRun(id, ['done', 'failed'], 60000)).status, 'done');
    const ppl = {};
    for (const [name, id] of Object.entries(tiny)) ppl[name] = (await d.run(id)).metrics.ppl.value;

    await page.goto(url('/'));
    await page.waitForSelector(`tr[data-run-id="${tiny.gamma}"]`);
    const all = await rowIds(page);
    for (const id of Object.values(tiny)) assert.ok(all.includes(id), `run ${id} listed`);
    assert.deepStrictEqual(all, [...all].sort((x, y) => y - x), 'newest first');

    // tag filter (typed, then committed with Enter): only the blue runs, in the address too
    await page.fill('input[name="tag"]', 'blue');
    await page.press('input[name="tag"]', 'Enter');
    await page.waitForFunction(() => document.querySelectorAll('table.runs tbody tr[data-run-id]').length === 2);
    assert.deepStrictEqual(await rowIds(page), [tiny.gamma, tiny.alpha]);
    assert.match(page.url(), /tag=blue/);
    // order by ppl from its column header: lowest first, then highest first
    await page.click('th[data-col="ppl"] button.sort');
    await page.waitForFunction(() => document.querySelector('th[data-col="ppl"]')?.getAttribute('aria-sort') === 'ascending');
    const blue = ['alpha', 'gamma'].sort((x, y) => ppl[x] - ppl[y]);
    assert.deepStrictEqual(await rowIds(page), blue.map((n) => tiny[n]));
    await page.click('th[data-col="ppl"] button.sort');
    await page.waitForFunction(() => document.querySelector('th[data-col="ppl"]')?.getAttribute('aria-sort') === 'descending');
    assert.deepStrictEqual(await rowIds(page), blue.reverse().map((n) => tiny[n]));
    const shown = (await cells(page, 'ppl')).map(Number);
    const want = blue.map((n) => ppl[n]);
    shown.forEach((v, i) => assert.ok(Math.abs(v - want[i]) <= 1e-4 * want[i], `ppl shown ${v}, stored ${want[i]}`));
    // free text and status, from a bookmarked address
    await page.goto(url('/?q=bet&status=done'));
    await page.waitForFunction(() => document.querySelectorAll('table.runs tbody tr[data-run-id]').length === 1);
    assert.deepStrictEqual(await rowIds(page), [tiny.beta]);
    assert.strictEqual(await page.inputValue('select[name="status"]'), 'done');
    await page.goto(url('/?status=failed'));
    await page.waitForSelector('table.runs td.empty');
    // all three ordered by ppl over the whole table (runs without it last)
    await page.goto(url('/?order=ppl&tag=tiny'));
    await page.waitForSelector('table.runs tbody tr[data-run-id]');
    assert.deepStrictEqual(await rowIds(page), Object.keys(tiny).sort((x, y) => ppl[x] - ppl[y]).map((n) => tiny[n]));

    // live: a run submitted now appears, and its status follows it to done
    await page.goto(url('/'));
    await page.waitForSelector('.live[data-state="live"]');
    const fresh = (await d.req('POST', '/api/runs', tinySpec({ name: 'delta', tags: ['tiny'] }))).json.id;
    await page.waitForSelector(`tr[data-run-id="${fresh}"]`, { timeout: 15000 });
    await page.waitForSelector(`tr[data-run-id="${fresh}"] td[data-col="status"] .badge[data-status="done"]`, { timeout: 60000 });
    tiny.delta = fresh;
    // pages of two
    await page.goto(url('/?tag=tiny&limit=2'));
    await page.waitForFunction(() => document.querySelector('.pager .count')?.textContent === '1–2 of 4');
    const first = await rowIds(page);
    await page.click('.pager button:has-text("Next")');
    await page.waitForFunction(() => document.querySelector('.pager .count')?.textContent === '3–4 of 4');
    const second = await rowIds(page);
    assert.deepStrictEqual([...first, ...second], [tiny.delta, tiny.gamma, tiny.beta, tiny.alpha]);
    assert.ok(await page.isDisabled('.pager button:has-text("Next")'));
    assert.match(page.url(), /offset=2/);
  });

  await t.test('run page: the loss curve grows while the rotations learn; then scores, checkpoints, artifacts', async () => {
    // two learning runs, one per worker; the page is open before the first step
    learnId = (await d.req('POST', '/api/runs', learnSpec('learner', 20))).json.id;
    shortId = (await d.req('POST', '/api/runs', learnSpec('short learner', 6))).json.id;
    await page.goto(url(`/runs/${learnId}`));
    await page.waitForSelector('#loss-chart');
    // every change of the chart's point count, with the run's status at that moment
    await page.evaluate(() => {
      window.seen = [];
      const chart = document.getElementById('loss-chart');
      const note = () => window.seen.push({ points: Number(chart.dataset.points),
        status: document.querySelector('#run-status .badge')?.dataset.status });
      note();
      new MutationObserver(note).observe(chart, { attributes: true, attributeFilter: ['data-points'] });
    });
    await page.waitForSelector('#run-status .badge[data-status="done"]', { timeout: 120000 });
    await page.waitForSelector('#scores tr[data-key="ppl"]', { timeout: 10000 });
    await page.waitForFunction(() => document.getElementById('loss-chart').dataset.points === '20');
    const seen = await page.evaluate(() => window.seen);
    const whileRunning = seen.filter((s) => s.status === 'running' && s.points > 0 && s.points < 20).map((s) => s.points);
    assert.ok(new Set(whileRunning).size >= 2, `the curve grew while the run was running: ${JSON.stringify(seen)}`);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i].points >= seen[i - 1].points, 'and never shrank');
    assert.ok(await page.$('#loss-chart canvas'), 'uPlot drew it');
    const run = await d.run(learnId);
    assert.strictEqual(run.status, 'done', run.reason);
    const shownPpl = Number(await page.textContent('#scores tr[data-key="ppl"] td.value'));
    assert.ok(Math.abs(shownPpl - run.metrics.ppl.value) <= 1e-4 * run.metrics.ppl.value, `${shownPpl} vs ${run.metrics.ppl.value}`);
    assert.match(await page.textContent('#train-facts'), /step 20 of 20/);
    assert.strictEqual(await page.textContent('#run-progress-text'), 'evaluate: 2 / 2');
    await page.waitForFunction(() => document.querySelectorAll('#checkpoints tbody tr').length === 4);
    // the run is done, so the API lists every artifact: wait until the page shows as many
    // (each artifact event reloads the list a little later), never for a guessed count
    const arts = (await d.req('GET', `/api/runs/${learnId}/artifacts`)).json.artifacts;
    assert.ok(arts.length >= 2, `artifacts of a finished run: ${JSON.stringify(arts)}`);
    await page.waitForFunction((n) => document.querySelectorAll('#artifacts tbody tr').length === n, arts.length);
    const shas = await page.$$eval('#artifacts code.sha', (els) => els.map((e) => e.title));
    assert.deepStrictEqual(shas.sort(), arts.map((a) => a.sha256).sort());
    const logText = await page.textContent('#log');
    assert.match(logText, /learning rotations: 20 steps/);
    assert.strictEqual(JSON.parse(await page.textContent('#spec pre')).rotation.train.steps, 20, 'the normalized spec');
    assert.ok(await page.isDisabled('#cancel'), 'a finished run cannot be canceled');

    // one line per score: ppl once, its dataset beside it, not again as ppl/DATA
    assert.strictEqual(await page.$$eval('#scores tr[data-key^="ppl/"]', (e) => e.length), 0);
    assert.strictEqual((await page.textContent('#scores tr[data-key="ppl"] th')).trim(), 'ppl tinystories/test.txt');
    const keys = await page.$$eval('#scores tr[data-key]', (trs) => trs.map((tr) => tr.dataset.key));
    assert.strictEqual(new Set(keys.map((k) => (run.metrics[k] || {}).value)).size, keys.length, `no value twice: ${keys}`);
    // the finished run names the worker that ran it, and its host
    assert.ok(run.worker_name && run.worker_host, JSON.stringify(run));
    assert.strictEqual(await page.textContent('dd[data-fact="worker"]'),
      `${run.worker_name} #${run.worker_id} on ${run.worker_host}`);
    assert.match(run.worker_name, /^local-\d$/);
    // the stream ended with the run: no reconnecting
    await page.waitForSelector('.live[data-state="ended"]', { state: 'attached' });
    assert.ok(await page.isHidden('#charts-missing'), 'uPlot is there: no notice');

    // smoothing: an EMA drawn over the faint raw curve; 0 is the raw curve, 0.9 is calmer
    const legend = await page.$$eval('#loss-chart .u-legend .u-series', (els) => els.map((e) => e.textContent));
    assert.ok(legend.some((l) => l.startsWith('train/loss (smoothed)')) && legend.some((l) => /^train\/loss(?! \()/.test(l)),
      legend.join('|'));
    const slide = (v) => page.$eval('#smoothing', (el, x) => {
      el.value = x;
      el.dispatchEvent(new Event('input', { bubbles: true }));
    }, String(v));
    const rough = () => page.$eval('#loss-chart', (el) => [Number(el.dataset.roughRaw), Number(el.dataset.roughSmoothed)]);
    await slide(0);
    await page.waitForFunction(() => document.getElementById('loss-chart').dataset.smoothing === '0');
    await page.waitForFunction(() => { const c = document.getElementById('loss-chart').dataset; return c.roughRaw === c.roughSmoothed; });
    const [raw0] = await rough();
    assert.ok(raw0 > 0, 'the raw loss moves from step to step');
    await slide(0.9);
    await page.waitForFunction(() => { const c = document.getElementById('loss-chart').dataset; return Number(c.roughSmoothed) < Number(c.roughRaw); });
    const [raw9, smooth9] = await rough();
    assert.strictEqual(raw9, raw0, 'the raw curve stays as it was');
    assert.ok(smooth9 < raw9);
    assert.strictEqual(await page.textContent('#smoothing-value'), '0.90');
    await page.reload();
    await page.waitForFunction(() => document.getElementById('loss-chart')?.dataset.smoothing === '0.9');
    assert.strictEqual(await page.inputValue('#smoothing'), '0.9', 'the weight is remembered');
  });

  await t.test('playground: serve the finished run, stream from it, compare it with full precision', async () => {
    await page.goto(url(`/runs/${learnId}`));
    await page.click('#serve-start');
    await page.waitForSelector('#serve-state[data-state="ready"]', { timeout: 60000 });
    const prompt = 'Once upon a time';
    await page.fill('#pg-prompt', prompt);
    await page.fill('#pg-max', '24');
    await page.fill('#pg-temp', '0');
    await page.click('#pg-generate');
    await page.waitForSelector('#pg-output[data-done="1"]');
    const streamed = await page.textContent('#pg-output');
    // greedy: the page's stream is what the proxied endpoint answers in one body
    const direct = await d.req('POST', `/api/runs/${learnId}/v1/completions`, { prompt, max_tokens: 24, temperature: 0 });
    assert.strictEqual(direct.status, 200, direct.body.toString());
    assert.strictEqual(streamed, direct.json.choices[0].text);

    await page.click('#pg-compare');
    await page.waitForSelector('#pg-quant span.tok');
    await page.waitForFunction(() => document.getElementById('pg-fp').textContent.length > 0);
    const toks = await page.$$eval('#pg-quant span.tok', (els) => els.map((e) => ({
      kl: Number(e.dataset.kl), bg: e.style.backgroundColor, text: e.textContent })));
    assert.ok(toks.length > 0 && toks.length <= 24, `${toks.length} tokens`);
    // the quantized side is the served model's own greedy text, every token coloured by its KL
    assert.strictEqual(toks.map((t) => t.text).join(''), streamed.slice(0, toks.map((t) => t.text).join('').length));
    const alpha = (bg) => Number(/rgba\(220, 38, 38, ([\d.]+)\)/.exec(bg)[1]);
    for (const t of toks) assert.ok(Number.isFinite(t.kl) && t.kl >= 0 && alpha(t.bg) > 0, JSON.stringify(t));
    const byKl = [...toks].sort((a, b) => a.kl - b.kl);
    for (let i = 1; i < byKl.length; i++) assert.ok(alpha(byKl[i].bg) >= alpha(byKl[i - 1].bg), 'deeper red for a larger KL');
    const agreement = Number(await page.getAttribute('#pg-summary', 'data-agreement'));
    assert.ok(agreement >= 0 && agreement <= 1);
    assert.match(await page.textContent('#pg-summary'), /top-1 agreement .* mean KL/);

    await page.click('#serve-stop');
    await page.waitForSelector('#serve-state[data-state="none"]');
    assert.strictEqual((await d.req('GET', `/api/runs/${learnId}/serve`)).status, 404);
  });

  await t.test('compare view: two runs, curves overlaid, scores side by side; picked from the runs table', async () => {
    await d.waitRun(shortId, ['done', 'failed'], 60000);
    await page.goto(url('/'));
    await page.waitForSelector(`tr[data-run-id="${shortId}"]`);
    await page.check(`tr[data-run-id="${learnId}"] input[type="checkbox"]`);
    await page.check(`tr[data-run-id="${shortId}"] input[type="checkbox"]`);
    await page.click('text=Compare selected (2)');
    await page.waitForURL(/\/compare\?runs=/);
    const ids = new URL(page.url()).searchParams.get('runs').split(',').map(Number).sort();
    assert.deepStrictEqual(ids, [learnId, shortId].sort());
    await page.waitForFunction(() => document.getElementById('compare-chart')?.dataset.series === '2');
    await page.waitForFunction(() => document.getElementById('compare-chart').dataset.points === '20');
    const legend = await page.$$eval('#compare-chart .u-legend .u-series', (els) => els.map((e) => e.textContent));
    assert.ok(legend.some((l) => l.includes(`#${learnId} learner`)) && legend.some((l) => l.includes(`#${shortId} short learner`)), legend.join('|'));
    for (const id of [learnId, shortId]) {
      const v = Number(await page.textContent(`#compare-metrics tr[data-key="ppl"] td[data-run-id="${id}"]`));
      const want = (await d.run(id)).metrics.ppl.value;
      assert.ok(Math.abs(v - want) <= 1e-4 * want, `run ${id}: ${v} vs ${want}`);
    }
    assert.strictEqual(await page.$$eval('#compare-metrics tr[data-key="ppl"] td.best', (e) => e.length), 1, 'one best ppl');
    const steps = await page.$$eval('#compare-spec tr[data-field="rotation.train.steps"] td', (tds) => tds.map((x) => x.textContent));
    assert.deepStrictEqual(steps.sort(), ['20', '6']);
    assert.strictEqual(await page.$$eval('#compare-metrics tr[data-key^="ppl/"]', (e) => e.length), 0, 'ppl once');

    // a learned and a plain run: the learning settings are not differences
    await page.goto(url(`/compare?runs=${learnId},${tiny.alpha}`));
    await page.waitForSelector('#compare-spec tr[data-field="rotation.mode"]');
    const fields = await page.$$eval('#compare-spec tr[data-field]', (trs) => trs.map((tr) => tr.dataset.field));
    assert.ok(!fields.some((f) => f.startsWith('rotation.train.') || f === 'rotation.init'), fields.join(' '));
    assert.ok(fields.includes('quant.w_bits') && fields.includes('weights.method'), fields.join(' '));
    assert.ok(!fields.some((f) => f.startsWith('weights.') && f !== 'weights.method'), 'GPTQ settings of no GPTQ run');
  });

  await t.test('new run: a wrong field is refused with its name; a good spec becomes a run', async () => {
    await page.goto(url('/new'));
    await page.waitForFunction(() => document.getElementById('spec-input')?.value.includes('"rotation"'));
    const defaults = JSON.parse(await page.inputValue('#spec-input'));
    assert.strictEqual(defaults.rotation.mode, 'spinquant', 'prefilled with the daemon\'s defaults');
    const bad = tinySpec({ name: 'from the page', quant: { a_bits: 'four' } });
    await page.fill('#spec-input', JSON.stringify(bad, null, 2));
    await page.click('#submit');
    await page.waitForSelector('#submit-result .error');
    assert.strictEqual(await page.textContent('#submit-result .error .field'), 'quant.a_bits');
    assert.match(await page.textContent('#submit-result .error'), /^422 invalid_field/);
    await page.fill('#spec-input', JSON.stringify(tinySpec({ name: 'from the page' }), null, 2));
    await page.click('#submit');
    await page.waitForURL(/\/runs\/\d+$/);
    const id = Number(page.url().split('/').pop());
    assert.strictEqual((await d.run(id)).name, 'from the page');
    await page.waitForSelector('#run-status .badge');
  });

  await t.test('sweeps: listed with their runs by status; a sweep\'s page puts the best first; workers listed', async () => {
    const r = await d.req('POST', '/api/sweeps', { name: 'limits', base: tinySpec(), grid: { 'eval.limit': [1, 2, 3] } });
    assert.strictEqual(r.status, 201, JSON.stringify(r.json));
    const sid = r.json.sweep.id;
    const ids = r.json.runs;
    const ppl = {};
    for (const id of ids) ppl[id] = (await d.waitRun(id, ['done', 'failed'], 60000)).metrics.ppl.value;
    await page.goto(url('/sweeps'));
    await page.waitForFunction((id) => /3 done/.test(document.querySelector(`tr[data-sweep-id="${id}"]`)?.textContent || ''), sid);
    await page.click(`tr[data-sweep-id="${sid}"] td:nth-child(2) a`);
    await page.waitForURL(new RegExp(`/sweeps/${sid}`));
    await page.waitForFunction(() => document.querySelector('th[data-col="ppl"]')?.getAttribute('aria-sort') === 'ascending');
    assert.deepStrictEqual(await rowIds(page), [...ids].sort((x, y) => ppl[x] - ppl[y]), 'lowest perplexity first');
    await page.click('th[data-col="ppl"] button.sort');
    await page.waitForFunction(() => document.querySelector('th[data-col="ppl"]')?.getAttribute('aria-sort') === 'descending');
    assert.deepStrictEqual(await rowIds(page), [...ids].sort((x, y) => ppl[y] - ppl[x]));
    await page.click('text=Compare all runs');
    await page.waitForFunction(() => document.getElementById('compare-chart')?.dataset.series === '3');
    assert.strictEqual(await page.$$eval('#compare-metrics tr[data-key="ppl"] td', (tds) => tds.length), 3);
    const limits = await page.$$eval('#compare-spec tr[data-field="eval.limit"] td', (tds) => tds.map((x) => x.textContent));
    assert.deepStrictEqual(limits.sort(), ['1', '2', '3'], 'the spec field the grid varies');
    await page.goto(url('/workers'));
    await page.waitForFunction(() => document.querySelectorAll('tr[data-worker-id]').length === 2);
    assert.match(await page.textContent('#health'), /2 connected/);
  });

  await t.test('with tokens: reads need one, a viewer\'s cancel is answered 403 on the page', async () => {
    const admin = d.token('root', 'admin');
    const viewer = d.token('val', 'viewer');
    await waitFor(async () => (await d.req('GET', '/api/runs')).status === 401, 5000, 'auth to switch on');
    const long = (await d.req('POST', '/api/runs', learnSpec('long', 400), admin)).json.id;
    await page.goto(url('/'));
    await page.waitForSelector('#banner:not([hidden]) .error');
    assert.match(await page.textContent('#banner'), /401 unauthorized/);
    await page.fill('#token-input', viewer);
    await page.click('#token-save');
    await page.waitForFunction(() => document.getElementById('whoami').textContent === 'val (viewer)');
    await page.waitForSelector(`tr[data-run-id="${long}"]`);
    await page.goto(url(`/runs/${long}`));
    await page.waitForSelector('.live[data-state="live"]'); // the stream takes ?access_token=
    page.once('dialog', (dlg) => dlg.accept());
    await page.click('#cancel');
    await page.waitForSelector('#actions-error:not([hidden]) .error');
    const msg = await page.textContent('#actions-error');
    assert.match(msg, /^403 forbidden/);
    assert.match(msg, /needs role member; token 'val' has role viewer/);
    assert.ok(!(await d.req('GET', `/api/runs/${long}`, undefined, admin)).json.cancel_requested, 'nothing was canceled');
    assert.strictEqual((await d.req('POST', `/api/runs/${long}/cancel`, undefined, admin)).status < 300, true);
  });

  assert.deepStrictEqual(b.errors, [], 'no uncaught errors in the pages');
  await b.close();
  const { code } = await d.stop();
  assert.strictEqual(code, 0, d.log.slice(-3000));
});
