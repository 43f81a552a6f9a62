// The console's views: adapters (versions, residency, live split, actions), push, tenants and keys.
import { api, enc, uploadAdapter } from './api.js';

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

const $ = (id) => document.getElementById(id);

export function notice(text, kind = '') {
  const n = $('notice');
  n.textContent = text;
  n.className = kind;
}

const bytes = (n) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);
const when = (secs) => (secs ? new Date(secs * 1000).toISOString().replace('T', ' ').slice(0, 19) : '–');

// Shared state the views read: the signed-in role and the tenants (id → name) when admin.
export const state = { admin: false, tenants: [], tenantNames: new Map(), openAdapters: new Set(), selectedTenant: null };

const tenantLabel = (id) => (state.tenantNames.has(id) ? `${state.tenantNames.get(id)} (${id})` : id);

// Runs an action, reports it in the notice line, then refreshes `after`.
async function act(what, fn, after) {
  try {
    await fn();
    notice(`${what}: done`, 'ok');
  } catch (e) {
    notice(`${what}: ${e.message}`, 'error');
  }
  if (after) await after();
}

// ---- adapters ------------------------------------------------------------------------------

// The live split as {version: weight}: the `live` object when the server sends one, else the
// single live version.
function liveSplit(a) {
  if (a.live && typeof a.live === 'object' && Object.keys(a.live).length) return a.live;
  return a.live_version ? { [a.live_version]: 1 } : {};
}

function liveCell(a) {
  const split = liveSplit(a);
  const entries = Object.entries(split);
  if (!entries.length) return h('span', { className: 'badge off' }, 'none');
  if (entries.length === 1) {
    return h('span', { className: 'badge live', dataset: { live: entries[0][0] } }, `v${entries[0][0]}`);
  }
  return h('span', { dataset: { live: entries.map(([v]) => v).join(',') } },
    entries.map(([v, w]) => h('span', { className: 'badge canary' }, `v${v} · ${Math.round(w * 1000) / 10}%`)));
}

function residencyCell(a) {
  const r = a.resident || {};
  return ['device', 'host', 'storage'].map((tier) =>
    h('span', { className: `badge ${r[tier] ? 'on' : 'off'}`, title: r[tier] ? `resident in ${tier} memory` : `not in ${tier}` }, tier));
}

function versionRows(a) {
  const split = liveSplit(a);
  const rows = (a.versions || []).slice().sort((x, y) => y.version - x.version).map((v) => {
    const n = v.version;
    const live = split[n] !== undefined;
    const badge = live
      ? (Object.keys(split).length > 1 ? h('span', { className: 'badge canary' }, `canary ${Math.round(split[n] * 1000) / 10}%`) : h('span', { className: 'badge live' }, 'live'))
      : v.staged ? h('span', { className: 'badge staged' }, 'staged') : h('span', { className: 'badge' }, 'idle');
    const meta = v.metadata && Object.keys(v.metadata).length ? JSON.stringify(v.metadata) : '';
    const actions = h('td', { className: 'actions' });
    if (!live || Object.keys(split).length > 1) {
      actions.append(
        h('button', { type: 'button', className: 'secondary', dataset: { action: 'activate', adapter: a.name, version: n },
          onclick: () => act(`activate ${a.name} v${n}`, () => api('POST', `/admin/v1/adapters/${enc(a.name)}/activate`, { version: n }), loadAdapters) }, 'Activate'),
        h('button', { type: 'button', className: 'secondary', dataset: { action: 'rollback', adapter: a.name, version: n },
          onclick: () => act(`roll back ${a.name} to v${n}`, () => api('POST', `/admin/v1/adapters/${enc(a.name)}/rollback`, { version: n }), loadAdapters) }, 'Roll back'));
    }
    return h('tr', { dataset: { version: n } },
      h('td', {}, `v${n}`), h('td', {}, badge), h('td', {}, String(v.rank ?? '')),
      h('td', { className: 'mono' }, (v.target_modules || []).join(', ')),
      h('td', {}, v.bytes !== undefined ? bytes(v.bytes) : ''), h('td', {}, when(v.created)),
      h('td', { className: 'mono', title: v.sha256 || '' }, v.sha256 ? v.sha256.slice(0, 12) : ''),
      h('td', { className: 'mono' }, [v.uploaded_by || v.created_by || '', meta ? ` ${meta}` : '']),
      actions);
  });
  const table = h('table', {},
    h('thead', {}, h('tr', {}, ['Version', 'State', 'Rank', 'Targets', 'Size', 'Created', 'sha256', 'By / metadata', ''].map((t) => h('th', {}, t)))),
    h('tbody', {}, rows));
  return (a.versions || []).length > 1 ? [table, splitForm(a, split)] : [table];
}

// The canary split editor: a share in percent per version; PUT .../live with those above zero.
function splitForm(a, split) {
  const inputs = (a.versions || []).map((v) => h('input', {
    type: 'number', min: '0', max: '100', step: 'any', className: 'share',
    value: split[v.version] !== undefined ? String(Math.round(split[v.version] * 1000) / 10) : '0',
    dataset: { version: v.version },
  }));
  const submit = (e) => {
    e.preventDefault();
    const body = { split: {} };
    let total = 0;
    for (const i of inputs) {
      const pct = Number(i.value);
      if (pct > 0) body.split[i.dataset.version] = pct / 100;
      total += pct > 0 ? pct : 0;
    }
    if (Math.abs(total - 100) > 1e-6) {
      notice(`split: the shares add up to ${total}%, not 100%`, 'error');
      return;
    }
    act(`split ${a.name}`, () => api('PUT', `/admin/v1/adapters/${enc(a.name)}/live`, body), loadAdapters);
  };
  return h('form', { className: 'split', dataset: { splitOf: a.name }, onsubmit: submit },
    h('span', { className: 'hint' }, 'Canary split (%):'),
    inputs.map((input) => h('label', {}, `v${input.dataset.version}`, input)),
    h('button', { type: 'submit', className: 'secondary' }, 'Apply split'));
}

function adapterRows(a) {
  const open = state.openAdapters.has(a.name);
  const toggle = () => {
    if (open) state.openAdapters.delete(a.name); else state.openAdapters.add(a.name);
    loadAdapters();
  };
  const row = h('tr', { dataset: { adapter: a.name } },
    h('td', {}, h('strong', {}, a.name), a.shared ? h('span', { className: 'badge' }, 'shared') : null),
    h('td', {}, tenantLabel(a.owner || '')),
    h('td', { className: 'live-cell' }, liveCell(a)),
    h('td', {}, residencyCell(a)),
    h('td', {}, String((a.versions || []).length)),
    h('td', { className: 'actions' },
      h('button', { type: 'button', className: 'secondary', dataset: { action: 'versions', adapter: a.name }, onclick: toggle }, open ? 'Hide versions' : 'Versions'),
      h('button', { type: 'button', className: 'secondary', dataset: { action: 'evict', adapter: a.name },
        onclick: () => act(`evict ${a.name}`, () => api('POST', `/admin/v1/adapters/${enc(a.name)}/evict`), loadAdapters) }, 'Evict')));
  if (!open) return [row];
  return [row, h('tr', { className: 'details', dataset: { versionsOf: a.name } }, h('td', { colSpan: 6 }, versionRows(a)))];
}

export async function loadAdapters() {
  let list;
  try {
    list = (await api('GET', '/admin/v1/adapters')).data || [];
  } catch (e) {
    notice(`adapters: ${e.message}`, 'error');
    return;
  }
  list.sort((x, y) => x.name.localeCompare(y.name));
  $('adapters-table').tBodies[0].replaceChildren(...list.flatMap(adapterRows));
  $('adapters-empty').hidden = list.length > 0;
  $('adapter-names').replaceChildren(...list.map((a) => h('option', { value: a.name })));
}

// ---- push ----------------------------------------------------------------------------------

export function fillTenantSelect() {
  const sel = $('push-tenant');
  const current = sel.value;
  sel.replaceChildren(...state.tenants.map((t) => h('option', { value: t.id }, `${t.name} (${t.id})`)));
  if (current) sel.value = current;
  $('push-tenant-label').hidden = !state.admin;
}

function setProgress(sent, total) {
  const p = $('push-progress');
  p.max = total || 1;
  p.value = sent;
  $('push-progress-text').textContent = total ? `${bytes(sent)} of ${bytes(total)} (${Math.floor((100 * sent) / total)}%)` : '';
}

async function push(e) {
  e.preventDefault();
  const name = $('push-name').value.trim();
  const result = $('push-result');
  const form = new FormData();
  form.append('config', $('push-config').files[0], 'adapter_config.json');
  form.append('weights', $('push-weights').files[0], 'adapter_model.safetensors');
  if (state.admin) form.append('tenant', $('push-tenant').value);
  if ($('push-stage').checked) form.append('stage', 'true');
  if (state.admin && $('push-shared').checked) form.append('shared', 'true');
  const meta = $('push-metadata').value.trim();
  if (meta) {
    try {
      if (typeof JSON.parse(meta) !== 'object') throw new Error();
    } catch {
      result.className = 'error';
      result.textContent = 'metadata: must be a JSON object';
      return;
    }
    form.append('metadata', meta);
  }
  $('push-submit').disabled = true;
  result.className = '';
  result.textContent = 'uploading…';
  setProgress(0, 0);
  try {
    const { status, body } = await uploadAdapter(name, form, setProgress);
    const what = status === 200 ? 'unchanged: the same content is already' : body.staged ? 'staged as' : 'live as';
    result.className = 'ok';
    result.dataset.version = body.version;
    result.textContent = `${name}: ${what} version ${body.version}${body.sha256 ? ` (sha256 ${body.sha256.slice(0, 12)}…)` : ''}`;
    await loadAdapters();
  } catch (err) {
    result.className = 'error';
    result.textContent = `push failed (${err.status || 'network'}): ${err.message}`;
  } finally {
    $('push-submit').disabled = false;
  }
}

// ---- tenants and keys ----------------------------------------------------------------------

export async function loadTenants() {
  try {
    state.tenants = (await api('GET', '/admin/v1/tenants')).data || [];
  } catch (e) {
    notice(`tenants: ${e.message}`, 'error');
    return;
  }
  state.tenantNames = new Map(state.tenants.map((t) => [t.id, t.name]));
  const limits = (l) => Object.entries(l || {}).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  $('tenants-table').tBodies[0].replaceChildren(...state.tenants.map((t) =>
    h('tr', { dataset: { tenant: t.id }, className: t.id === state.selectedTenant ? 'selected' : '' },
      h('td', {}, t.name), h('td', { className: 'mono' }, t.id), h('td', {}, String(t.weight)),
      h('td', {}, limits(t.limits)),
      h('td', { className: 'actions' }, h('button', { type: 'button', className: 'secondary', onclick: () => selectTenant(t.id) }, 'Keys')))));
  fillTenantSelect();
}

async function createTenant(e) {
  e.preventDefault();
  const body = { name: $('tenant-name').value.trim() };
  const weight = Number($('tenant-weight').value);
  if (weight) body.weight = weight;
  await act(`create tenant ${body.name}`, () => api('POST', '/admin/v1/tenants', body), loadTenants);
  $('tenant-name').value = '';
}

async function selectTenant(id) {
  state.selectedTenant = id;
  $('key-created').hidden = true;
  await loadTenants();
  await loadKeys();
}

async function loadKeys() {
  const id = state.selectedTenant;
  if (!id) return;
  $('keys-panel').hidden = false;
  $('keys-tenant').textContent = tenantLabel(id);
  const missing = $('keys-missing');
  let keys = [];
  try {
    keys = (await api('GET', `/admin/v1/tenants/${enc(id)}/keys`)).data || [];
    missing.hidden = true;
  } catch (e) {
    missing.hidden = false;
    missing.textContent = e.status === 404 || e.status === 405
      ? 'This server does not list keys yet (GET /admin/v1/tenants/{id}/keys); keys can still be created and revoked.'
      : `keys: ${e.message}`;
  }
  $('keys-table').tBodies[0].replaceChildren(...keys.map((k) =>
    h('tr', { dataset: { key: k.key_id } },
      h('td', {}, k.name || ''), h('td', { className: 'mono' }, k.key_id), h('td', {}, k.scope || 'inference'),
      h('td', {}, when(k.created)), h('td', {}, when(k.expires_at)), h('td', {}, k.last_used ? when(k.last_used) : 'never'),
      h('td', { className: 'actions' }, h('button', { type: 'button', className: 'danger',
        onclick: () => {
          // Revoking cannot be undone: clients holding the key fail from their next request.
          if (!window.confirm(`Revoke key ${k.name || k.key_id}? Requests with it fail from now on.`)) return;
          act(`revoke key ${k.key_id}`, () => api('DELETE', `/admin/v1/tenants/${enc(id)}/keys/${enc(k.key_id)}`), loadKeys);
        } }, 'Revoke')))));
}

async function createKey(e) {
  e.preventDefault();
  const body = { scope: $('key-scope').value };
  const name = $('key-name').value.trim();
  if (name) body.name = name;
  const days = Number($('key-expires').value);
  if (days > 0) body.expires_in = Math.round(days * 86400);
  const out = $('key-created');
  try {
    const k = await api('POST', `/admin/v1/tenants/${enc(state.selectedTenant)}/keys`, body);
    // Shown once, never stored: the server keeps only its hash.
    out.replaceChildren(`New ${body.scope} key ${k.key_id}, shown only now: `,
      h('code', { id: 'key-secret', dataset: { keyId: k.key_id } }, k.key));
    out.hidden = false;
    notice(`created key ${k.key_id}`, 'ok');
  } catch (err) {
    notice(`create key: ${err.message}`, 'error');
  }
  await loadKeys();
}

// ---- usage ---------------------------------------------------------------------------------

export async function loadUsage() {
  const groupBy = $('usage-group').value;
  const empty = $('usage-empty');
  let rows = [];
  try {
    rows = (await api('GET', `/admin/v1/usage?group_by=${enc(groupBy)}`)).data || [];
    empty.textContent = 'No usage recorded yet.';
  } catch (e) {
    empty.textContent = e.status === 404 ? 'This server has no usage route.' : `usage: ${e.message}`;
  }
  empty.hidden = rows.length > 0;
  rows.sort((x, y) => (y.day || '').localeCompare(x.day || '') || (x.tenant || '').localeCompare(y.tenant || ''));
  const n = (v) => (v === undefined ? '' : Number(v).toLocaleString('en-US'));
  $('usage-table').tBodies[0].replaceChildren(...rows.map((r) => h('tr', {},
    h('td', {}, r.day || 'all'), h('td', {}, tenantLabel(r.tenant || '')), h('td', {}, r.adapter || '(base model)'),
    h('td', {}, n(r.requests)), h('td', {}, n(r.prompt_tokens)), h('td', {}, n(r.completion_tokens)))));
}

export function bindViews() {
  $('usage-refresh').addEventListener('click', loadUsage);
  $('usage-group').addEventListener('change', loadUsage);
  $('adapters-refresh').addEventListener('click', loadAdapters);
  $('tenants-refresh').addEventListener('click', loadTenants);
  $('push-form').addEventListener('submit', push);
  $('tenant-form').addEventListener('submit', createTenant);
  $('key-form').addEventListener('submit', createKey);
}
