// nav.js - moving between pages without a reload: navigate() changes the
// address and tells the router (app.js listens for 'spinq:route');
// setQuery() rewrites the current page's query (its filters) in place.

export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  window.dispatchEvent(new Event('spinq:route'));
}

export function setQuery(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  const s = u.toString();
  history.replaceState(null, '', location.pathname + (s ? `?${s}` : ''));
}
