// The adapters view: versions, residency, live version or canary split; activate, roll back,
// split, evict.
import { api, enc } from './api.js';
import { $, act, bytes, h, notice, state, tenantLabel, when } from './dom.js';

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
