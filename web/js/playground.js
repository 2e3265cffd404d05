// playground.js - the run page's playground: serve a finished run's model
// (POST/DELETE /api/runs/ID/serve), talk to it (the OpenAI completions
// endpoint behind spinqd's proxy, streamed), and see what the quantization
// costs: /api/runs/ID/compare continues the prompt greedily with the served
// model and with its full-precision reference, side by side, every token of
// the quantized text coloured by KL(full precision || quantized) of the
// next-token distributions at its position, with top-1 agreement over the
// text. Colours: white at KL 0, deepening red to KL_RED and beyond.
import { api, get, postStream } from './api.js';
import { h, replace, fmtNum, showError } from './dom.js';

const KL_RED = 0.5; // nats: a token this far off is full red

export function klColour(kl) {
  const t = Math.max(0, Math.min(1, kl / KL_RED));
  return `rgba(220, 38, 38, ${(0.08 + 0.72 * t).toFixed(3)})`;
}

// the colour through the CSSOM: the CSP forbids style attributes
function tokenSpan(tok) {
  const el = h('span.tok', {
    dataset: { kl: String(tok.kl), agree: tok.top1_agree ? '1' : '0' },
    title: `KL ${fmtNum(tok.kl)}${tok.top1_agree ? '' : ` · full precision would say ${JSON.stringify(tok.reference_top)}`}`,
  }, tok.text);
  el.style.backgroundColor = klColour(tok.kl);
  return el;
}

export function playground(id) {
  const stateEl = h('span#serve-state.muted', 'not served');
  const startBtn = h('button#serve-start', { type: 'button' }, 'Serve this model');
  const stopBtn = h('button#serve-stop', { type: 'button', hidden: true }, 'Stop serving');
  const err = h('div#playground-error.errors', { hidden: true });
  const prompt = h('textarea#pg-prompt', { rows: '3', 'aria-label': 'prompt' }, 'Once upon a time');
  const maxTok = h('input#pg-max', { type: 'number', min: '1', max: '512', value: '64', 'aria-label': 'max tokens' });
  const temp = h('input#pg-temp', { type: 'number', min: '0', max: '2', step: '0.1', value: '0.8', 'aria-label': 'temperature' });
  const topP = h('input#pg-top-p', { type: 'number', min: '0', max: '1', step: '0.05', value: '0.95', 'aria-label': 'top p' });
  const genBtn = h('button#pg-generate', { type: 'button', disabled: true }, 'Generate');
  const cmpBtn = h('button#pg-compare', { type: 'button', disabled: true }, 'Compare with full precision');
  const out = h('pre#pg-output.pg-output');
  const quantEl = h('div#pg-quant.pg-text');
  const fpEl = h('div#pg-fp.pg-text');
  const summary = h('div#pg-summary.muted');
  const el = h('section#playground',
    h('div.section-head', h('h2', 'Playground'), stateEl, startBtn, stopBtn),
    err,
    h('div.pg-controls', prompt,
      h('div.pg-settings', h('label', 'max tokens ', maxTok), h('label', 'temperature ', temp),
        h('label', 'top p ', topP), genBtn, cmpBtn)),
    out,
    h('div.grid2', h('div', h('h3', 'Quantized (coloured by KL divergence)'), quantEl),
      h('div', h('h3', 'Full precision'), fpEl)),
    summary);

  const fail = (e) => { err.hidden = false; showError(err, e); };
  const ok = () => { err.hidden = true; };

  function show(s) {
    const ready = s && s.state === 'ready';
    stateEl.textContent = s ? `${s.state} (${s.kind} model, worker ${s.worker})` : 'not served';
    stateEl.dataset.state = s ? s.state : 'none';
    startBtn.hidden = !!s;
    stopBtn.hidden = !s;
    genBtn.disabled = !ready;
    cmpBtn.disabled = !ready;
  }

  // the state until ready (the worker loads the model after it listens)
  async function poll() {
    let s = null;
    try { s = await get(`/api/runs/${id}/serve`); } catch (e) { if (e.status !== 404) fail(e); }
    show(s);
    if (s && s.state === 'loading') setTimeout(poll, 500);
  }

  startBtn.addEventListener('click', async () => {
    ok();
    try { show(await api('POST', `/api/runs/${id}/serve`, {})); poll(); } catch (e) { fail(e); }
  });
  stopBtn.addEventListener('click', async () => {
    ok();
    try { await api('DELETE', `/api/runs/${id}/serve`); show(null); } catch (e) { fail(e); }
  });

  genBtn.addEventListener('click', async () => {
    ok();
    out.textContent = '';
    genBtn.disabled = true;
    try {
      await postStream(`/api/runs/${id}/v1/completions`, {
        prompt: prompt.value, max_tokens: Number(maxTok.value), temperature: Number(temp.value),
        top_p: Number(topP.value), stream: true,
      }, (chunk) => {
        const c = chunk.choices && chunk.choices[0];
        if (c && c.text) out.textContent += c.text;
      });
      out.dataset.done = '1';
    } catch (e) { fail(e); }
    genBtn.disabled = false;
  });

  cmpBtn.addEventListener('click', async () => {
    ok();
    cmpBtn.disabled = true;
    replace(quantEl);
    replace(fpEl);
    summary.textContent = 'comparing…';
    try {
      const r = await api('POST', `/api/runs/${id}/compare`, { prompt: prompt.value, max_tokens: Number(maxTok.value) });
      replace(quantEl, r.quantized.tokens.map(tokenSpan));
      replace(fpEl, r.full_precision.tokens.map((t) => t.text).join(''));
      const s = r.summary;
      summary.textContent = `${s.positions} tokens · top-1 agreement ${fmtNum(100 * s.top1_agreement)} % · ` +
        `mean KL ${fmtNum(s.kl_mean)} · max KL ${fmtNum(s.kl_max)} (nats, full precision ‖ quantized)`;
      summary.dataset.agreement = String(s.top1_agreement);
    } catch (e) {
      summary.textContent = '';
      fail(e);
    }
    cmpBtn.disabled = false;
  });

  poll();
  return el;
}
