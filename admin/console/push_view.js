// The push view: a new adapter version from two file inputs, with an upload progress bar.
import { uploadAdapter } from './api.js';
import { $, bytes, h, state } from './dom.js';
import { loadAdapters } from './adapters_view.js';

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

export function bindPush() {
  $('push-form').addEventListener('submit', push);
}
