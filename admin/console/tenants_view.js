// The tenants view (admin key): tenants, and per tenant its keys (list, create once-shown, revoke).
import { api, enc } from './api.js';
import { $, act, h, notice, state, tenantLabel, when } from './dom.js';
import { fillTenantSelect } from './push_view.js';

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

export function bindTenants() {
  $('tenants-refresh').addEventListener('click', loadTenants);
  $('tenant-form').addEventListener('submit', createTenant);
  $('key-form').addEventListener('submit', createKey);
}
