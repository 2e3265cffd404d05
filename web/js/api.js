// api.js - the dashboard's only way to the daemon: JSON requests with the
// saved token, errors as ApiError (the API's {"error":{code,message,field}}
// kept whole, so pages can show them), event streams that reconnect, and
// downloads that carry the token.
//
// The token lives in localStorage; fetches send it as Authorization: Bearer,
// EventSource cannot send headers and gets ?access_token= instead (the API
// accepts it on the two stream routes only).

const TOKEN_KEY = 'spinq.token';

export function getToken() {
  try { return localStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}

export function setToken(t) {
  try {
    if (t) localStorage.setItem(TOKEN_KEY, t);
    else localStorage.removeItem(TOKEN_KEY);
  } catch { /* storage disabled: the token lasts for this page only */ }
  listeners.forEach((fn) => fn(t));
}

const listeners = new Set();
export function onTokenChange(fn) { listeners.add(fn); return () => listeners.delete(fn); }

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
  }
}

const authListeners = new Set();
// fn(err) runs on every 401, so the page chrome can ask for a token.
export function onUnauthorized(fn) { authListeners.add(fn); }

function headers(extra = {}) {
  const h = { Accept: 'application/json', ...extra };
  const t = getToken();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

// One JSON request: resolves the body, rejects with ApiError.
export async function api(method, path, body) {
  const init = { method, headers: headers(), cache: 'no-store' };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'network', `cannot reach spinqd: ${e.message}`, null);
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const e = data && data.error ? data.error : {};
    const err = new ApiError(res.status, e.code || `http_${res.status}`,
      e.message || `${method} ${path}: HTTP ${res.status}`, e.field);
    if (res.status === 401) authListeners.forEach((fn) => fn(err));
    throw err;
  }
  return data;
}

export const get = (path) => api('GET', path);

// A query string from an object, leaving out empty values.
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : '';
}

// An event stream that comes back after errors. handlers: {type: fn(data, id)},
// onState(state) with 'connecting' | 'live' | 'retrying' | 'ended'. Resumes after
// the last id it saw (?last_event_id=), so a reconnect loses nothing. A run's
// stream ends with `end` ({run_id, status}) after the run's last event: then
// it is closed for good (handlers.end is called) instead of reconnecting.
// Returns close().
export function stream(path, handlers, onState = () => {}) {
  let es = null;
  let lastId = null;
  let closed = false;
  let timer = null;
  const open = () => {
    if (closed) return;
    const params = new URLSearchParams();
    const t = getToken();
    if (t) params.set('access_token', t);
    if (lastId !== null) params.set('last_event_id', String(lastId));
    const q = params.toString();
    onState('connecting');
    es = new EventSource(path + (q ? `?${q}` : ''));
    es.onopen = () => onState('live');
    es.onerror = () => {
      if (closed) return;
      if (es.readyState === EventSource.CLOSED) { // refused (401, 404): try again later, from where we were
        onState('retrying');
        clearTimeout(timer);
        timer = setTimeout(open, 5000);
      } else {
        onState('retrying'); // the browser reconnects by itself with Last-Event-ID
      }
    };
    es.addEventListener('end', (ev) => {
      closed = true;
      es.close();
      onState('ended');
      let data = {};
      try { data = JSON.parse(ev.data); } catch { /* keep {} */ }
      if (handlers.end) handlers.end(data);
    });
    for (const type of Object.keys(handlers).filter((k) => k !== 'end')) {
      es.addEventListener(type, (ev) => {
        const id = Number(ev.lastEventId);
        if (Number.isFinite(id)) lastId = id;
        let data;
        try { data = JSON.parse(ev.data); } catch { return; }
        handlers[type](data, id);
      });
    }
  };
  open();
  return () => {
    closed = true;
    clearTimeout(timer);
    if (es) es.close();
  };
}

// A streamed POST (Server-Sent Events in the body, as OpenAI's streams are):
// onData(parsed) for every `data:` line until `data: [DONE]` or the end.
// fetch, not EventSource: the request has a body and the token header.
export async function postStream(path, body, onData) {
  const res = await fetch(path, { method: 'POST', headers: headers({ 'Content-Type': 'application/json',
    Accept: 'text/event-stream' }), body: JSON.stringify(body) });
  if (!res.ok) {
    let e = {};
    try { e = (await res.json()).error || {}; } catch { /* not JSON */ }
    throw new ApiError(res.status, e.code || `http_${res.status}`, e.message || `HTTP ${res.status}`, e.field || e.param);
  }
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line.startsWith('data:')) continue;
      const data = line.slice(5).trim();
      if (data === '[DONE]') return;
      try { onData(JSON.parse(data)); } catch { /* a partial or foreign line */ }
    }
  }
}

// Downloads path as name. Without a token a plain link streams the file; with
// one, the body is fetched with the header and handed over as a blob.
export async function download(path, name) {
  if (!getToken()) {
    const a = document.createElement('a');
    a.href = path;
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    return;
  }
  const res = await fetch(path, { headers: headers({ Accept: '*/*' }) });
  if (!res.ok) {
    let e = {};
    try { e = (await res.json()).error || {}; } catch { /* not JSON */ }
    throw new ApiError(res.status, e.code || `http_${res.status}`, e.message || `HTTP ${res.status}`, e.field);
  }
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
