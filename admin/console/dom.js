// What every view shares: building DOM safely, the notice line, formatting, the session's state.

// Builds an element: h('td', {className: 'x', dataset: {v: 1}, onclick}, 'text', child, ...).
// Text goes in as text nodes only (never HTML), so no server value can inject markup.
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el[k] = v;
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

export const $ = (id) => document.getElementById(id);

export function notice(text, kind = '') {
  const n = $('notice');
  n.textContent = text;
  n.className = kind;
}

export const bytes = (n) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);
export const when = (secs) => (secs ? new Date(secs * 1000).toISOString().replace('T', ' ').slice(0, 19) : '–');

// Shared state the views read: the signed-in role and the tenants (id → name) when admin.
export const state = { admin: false, tenants: [], tenantNames: new Map(), openAdapters: new Set(), selectedTenant: null };

export const tenantLabel = (id) => (state.tenantNames.has(id) ? `${state.tenantNames.get(id)} (${id})` : id);

// Runs an action, reports it in the notice line, then refreshes `after`.
export async function act(what, fn, after) {
  try {
    await fn();
    notice(`${what}: done`, 'ok');
  } catch (e) {
    notice(`${what}: ${e.message}`, 'error');
  }
  if (after) await after();
}
