// app.js - the dashboard's shell: the token box, the navigation and the
// router. Pages are modules under pages/ exporting render(main, ctx) that
// draw into main and return a cleanup function (streams closed, charts
// destroyed) called when the page is left.
//
// Routes are real paths (spinqd serves index.html for them, server/static.c
// has the same first segments): /, /runs/ID, /sweeps, /sweeps/ID, /compare,
// /workers, /new. Query strings carry filters (?status=done&order=ppl), so a
// view can be bookmarked and shared.
import { api, getToken, setToken, onTokenChange, onUnauthorized } from './api.js';
import { h, replace, errorBox } from './dom.js';
import { navigate } from './nav.js';
import { loadUplot } from './chart.js';

const routes = [
  [/^\/$/, 'runs', () => import('./pages/runs.js')],
  [/^\/runs\/?$/, 'runs', () => import('./pages/runs.js')],
  [/^\/runs\/(\d+)$/, 'runs', () => import('./pages/run.js')],
  [/^\/sweeps\/?$/, 'sweeps', () => import('./pages/sweeps.js')],
  [/^\/sweeps\/(\d+)$/, 'sweeps', () => import('./pages/sweep.js')],
  [/^\/compare\/?$/, 'compare', () => import('./pages/compare.js')],
  [/^\/workers\/?$/, 'workers', () => import('./pages/workers.js')],
  [/^\/new\/?$/, 'new', () => import('./pages/newrun.js')],
];

const main = document.getElementById('main');
let cleanup = null;
let renderSeq = 0;

async function render() {
  const seq = ++renderSeq;
  if (cleanup) {
    try { cleanup(); } catch (e) { console.error(e); }
    cleanup = null;
  }
  const path = location.pathname;
  const route = routes.find(([re]) => re.test(path));
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', route && a.dataset.nav === route[1]);
  if (!route) {
    replace(main, h('h1', 'Not found'), h('p', 'No page at ', h('code', path), '. ', h('a', { href: '/' }, 'Runs')));
    return;
  }
  const params = route[0].exec(path).slice(1);
  const mod = await route[2]();
  if (seq !== renderSeq) return; // navigated again meanwhile
  replace(main);
  main.dataset.page = mod.name || route[1];
  try {
    cleanup = (await mod.render(main, { params, query: new URLSearchParams(location.search), navigate })) || null;
  } catch (e) {
    replace(main, errorBox(e));
  }
  if (seq !== renderSeq && cleanup) { cleanup(); cleanup = null; }
}

// Same-origin links to app routes change the page without a reload.
document.addEventListener('click', (ev) => {
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const a = ev.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const u = new URL(a.href, location.href);
  if (u.origin !== location.origin || u.pathname.startsWith('/api/') || u.pathname.startsWith('/vendor/')) return;
  if (!routes.some(([re]) => re.test(u.pathname))) return;
  ev.preventDefault();
  navigate(u.pathname + u.search);
});
window.addEventListener('popstate', render);
window.addEventListener('spinq:route', render);

// ---- the token box ----

const banner = document.getElementById('banner');
const who = document.getElementById('whoami');
const input = document.getElementById('token-input');

async function showIdentity() {
  try {
    const health = await api('GET', '/api/health');
    if (!health.auth && !getToken()) {
      who.textContent = 'auth off';
      return;
    }
    const me = await api('GET', '/api/whoami');
    who.textContent = `${me.name} (${me.role})`;
    banner.hidden = true;
  } catch (e) {
    who.textContent = e.status === 401 ? 'no valid token' : '';
  }
}

document.getElementById('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  setToken(input.value.trim());
  input.value = '';
});
document.getElementById('token-clear').addEventListener('click', () => setToken(''));
onTokenChange(() => { showIdentity(); render(); });
onUnauthorized((err) => {
  replace(banner, errorBox(err), h('p', 'This spinqd needs a token: paste one in the box above ',
    h('span.muted', '(spinqd token create NAME --role viewer)'), '.'));
  banner.hidden = false;
});

// Without uPlot (a plain `make` skips the web dependencies) the pages work
// but draw no chart: say so on every page, not only in the daemon's log.
loadUplot().catch(() => { document.getElementById('charts-missing').hidden = false; });

showIdentity();
render();
