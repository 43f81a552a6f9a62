// The console's entry point: sign-in (admin or deploy key) and navigation between the views.
import { api, clearKey, getKey, setKey } from './api.js';
import { loadAdapters } from './adapters_view.js';
import { $, notice, state } from './dom.js';
import { bindMetrics, drawMetrics, loadUsage, startMetrics, stopMetrics } from './metrics_view.js';
import { bindPush, fillTenantSelect } from './push_view.js';
import { bindTenants, loadTenants } from './tenants_view.js';

// ---- sign-in -------------------------------------------------------------------------------

// Which kind of key this is: 'admin' (tenant routes answer), 'deploy' (only adapter routes
// answer), or an ApiError explaining the refusal.
async function probeRole() {
  try {
    await api('GET', '/admin/v1/tenants');
    return 'admin';
  } catch (e) {
    if (e.status !== 403) throw e;
  }
  try {
    await api('GET', '/admin/v1/adapters');
    return 'deploy';
  } catch (e) {
    if (e.status === 403) e.message = 'this key may not manage adapters (an inference key?): sign in with an admin or deploy key';
    throw e;
  }
}

async function signIn(key) {
  setKey(key);
  let role;
  try {
    role = await probeRole();
  } catch (e) {
    clearKey();
    $('sign-in-error').textContent = e.status === 401 ? 'unknown key' : e.message;
    showSignIn();
    return;
  }
  state.admin = role === 'admin';
  $('sign-in').hidden = true;
  $('app').hidden = false;
  $('who').hidden = false;
  $('role').textContent = state.admin ? 'admin' : 'deploy key';
  for (const el of document.querySelectorAll('.admin-only')) el.hidden = !state.admin;
  if (state.admin) await loadTenants(); else fillTenantSelect();
  await loadAdapters();
  route();
  if (state.admin) startMetrics();
}

function showSignIn() {
  $('app').hidden = true;
  $('who').hidden = true;
  $('sign-in').hidden = false;
  $('key').focus();
}

function signOut() {
  clearKey();
  stopMetrics();
  location.hash = '';
  location.reload();
}

// ---- navigation ----------------------------------------------------------------------------

const VIEWS = ['adapters', 'push', 'tenants', 'metrics'];

function route() {
  let view = location.hash.slice(1);
  if (!VIEWS.includes(view) || (!state.admin && (view === 'tenants' || view === 'metrics'))) view = 'adapters';
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== view;
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.view === view);
  notice('');
  if (view === 'adapters') loadAdapters();
  if (view === 'tenants') loadTenants();
  if (view === 'metrics') {
    drawMetrics();
    loadUsage();
  }
}

// ---- start ---------------------------------------------------------------------------------

function main() {
  bindPush();
  bindTenants();
  bindMetrics();
  $('sign-in-form').addEventListener('submit', (e) => {
    e.preventDefault();
    $('sign-in-error').textContent = '';
    signIn($('key').value.trim());
    $('key').value = '';
  });
  $('sign-out').addEventListener('click', signOut);
  window.addEventListener('quilt-unauthorized', () => {
    if ($('app').hidden) return;  // signing in: signIn() reports it
    clearKey();
    stopMetrics();
    $('sign-in-error').textContent = 'the server no longer accepts this key (revoked or expired?): sign in again';
    showSignIn();
  });
  window.addEventListener('hashchange', route);
  if (getKey()) signIn(getKey()); else showSignIn();
}

main();
