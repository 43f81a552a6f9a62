// The metrics view (admin key): live charts and gauges from /metrics, and the persisted usage.
import { api, enc, scrapeMetrics } from './api.js';
import { drawChart, drawLegend } from './charts.js';
import { $, h, state, tenantLabel } from './dom.js';
import { GROUPINGS, bucketsBy, hasFamily, parseMetrics, quantile, rates, sumBy } from './prom.js';

const SCRAPE_MS = 2000;
const SPAN_MS = 180000;       // what a chart shows
const QUANTILE_MS = 30000;    // the window TTFT quantiles are computed over
const TTFT = 'quilt_time_to_first_token_seconds';

// Scrapes: [{t (ms), samples}], the last SPAN_MS + QUANTILE_MS of them.
let scrapes = [];
let timer = null;

export function startMetrics() {
  if (timer === null) {
    scrape();
    timer = setInterval(scrape, SCRAPE_MS);
  }
}

export function stopMetrics() {
  clearInterval(timer);
  timer = null;
}

async function scrape() {
  try {
    const text = await scrapeMetrics();
    const t = Date.now();
    scrapes.push({ t, samples: parseMetrics(text) });
    scrapes = scrapes.filter((s) => t - s.t <= SPAN_MS + QUANTILE_MS + SCRAPE_MS);
    $('metrics-status').textContent = `scraped ${new Date(t).toLocaleTimeString()}`;
  } catch (e) {
    $('metrics-status').textContent = `/metrics: ${e.message}`;
  }
  if (!$('view-metrics').hidden) drawMetrics();
}

// The counter the requests chart reads: quilt_requests_total when the server has it, else the
// TTFT histogram's count (one per request that produced a token), both labelled by tenant and
// adapter.
function requestCounter(samples) {
  if (hasFamily(samples, 'quilt_requests_total')) return 'quilt_requests_total';
  return `${TTFT}_count`;
}

// For each scrape after the first: {t, values: Map(group → number)} from fn(previous, current).
function seriesOf(fn) {
  const out = [];
  for (let i = 1; i < scrapes.length; i++) out.push({ t: scrapes[i].t, values: fn(i) });
  return out;
}

function rateSeries(name, groupOf) {
  return seriesOf((i) => {
    const a = scrapes[i - 1];
    const b = scrapes[i];
    return rates(sumBy(a.samples, name, groupOf), sumBy(b.samples, name, groupOf), (b.t - a.t) / 1000);
  });
}

// The scrape closest to QUANTILE_MS before scrape i (the oldest one when there is no older).
function windowStart(i) {
  let j = i - 1;
  while (j > 0 && scrapes[i].t - scrapes[j].t < QUANTILE_MS) j--;
  return j;
}

function quantileSeries(q, groupOf) {
  return seriesOf((i) => {
    const now = bucketsBy(scrapes[i].samples, TTFT, groupOf);
    const then = bucketsBy(scrapes[windowStart(i)].samples, TTFT, groupOf);
    const out = new Map();
    for (const [g, b] of now) {
      const v = quantile(q, then.get(g), b);
      if (v !== null) out.set(g, v * 1000);
    }
    return out;
  });
}

// Turns [{t, values}] into chart lines, one per group seen anywhere in the span.
function lines(points, dashed = false, suffix = '') {
  const groups = new Set();
  for (const p of points) for (const g of p.values.keys()) groups.add(g);
  return [...groups].sort().map((g) => ({
    group: g, key: g + suffix, dashed,
    points: points.map((p) => ({ t: p.t, v: p.values.has(g) ? p.values.get(g) : null })),
  }));
}

// A group's display name: tenant ids become tenant names, "" the base model.
function labelOf(group, grouping) {
  const tenant = (id) => (state.tenantNames.get(id) || id || '–');
  const adapter = (name) => name || '(base model)';
  if (grouping === 'tenant') return tenant(group);
  if (grouping === 'pair') {
    const [t, a] = group.split(' / ');
    return `${tenant(t)} / ${adapter(a)}`;
  }
  return adapter(group);
}

const ms = (v) => (v === null ? '–' : v < 10 ? v.toFixed(1) : v.toFixed(0));

const lastValue = (line) => {
  const p = line.points[line.points.length - 1];
  return p ? p.v : null;
};

// The server's state now, from the latest scrape's gauges (absent ones are left out).
function drawGauges(samples) {
  const one = (name, where = () => true) => {
    const s = samples.find((x) => x.name === name && where(x.labels));
    return s ? s.value : null;
  };
  const kv = one('vllm:kv_cache_usage_perc') ?? one('quilt_kv_cache_usage_ratio');
  const tier = (t) => one('quilt_adapters_resident', (l) => l.tier === t);
  const tiles = [
    ['waiting', one('vllm:num_requests_waiting') ?? one('quilt_queue_depth'), (v) => String(v)],
    ['running', one('vllm:num_requests_running') ?? one('quilt_running_requests'), (v) => String(v)],
    ['KV cache in use', kv, (v) => `${(v * 100).toFixed(1)}%`],
    ['adapters on device', tier('device'), (v) => String(v)],
    ['adapters in host memory', tier('host'), (v) => String(v)],
    ['adapters stored', tier('storage'), (v) => String(v)],
    ['preemptions', samples.filter((x) => x.name === 'quilt_preemptions_total').reduce((a, x) => a + x.value, 0), (v) => String(v)],
  ].filter(([, v]) => v !== null);
  $('gauges').replaceChildren(...tiles.map(([name, v, fmt]) =>
    h('div', { className: 'gauge', dataset: { gauge: name } }, h('div', { className: 'value' }, fmt(v)), h('div', { className: 'name' }, name))));
}

export function drawMetrics() {
  const grouping = $('metrics-group').value;
  const groupOf = GROUPINGS[grouping];
  const now = Date.now();
  const latest = scrapes.length ? scrapes[scrapes.length - 1].samples : [];
  drawGauges(latest);
  const charts = [
    ['requests', lines(rateSeries(requestCounter(latest), groupOf)), (v) => v.toFixed(2)],
    ['tokens', lines(rateSeries('quilt_completion_tokens_total', groupOf)), (v) => v.toFixed(1)],
    ['prompt', lines(rateSeries('quilt_prompt_tokens_total', groupOf)), (v) => v.toFixed(1)],
  ];
  for (const [id, ls, fmt] of charts) {
    drawChart($(`chart-${id}`), ls, now, SPAN_MS);
    drawLegend($(`legend-${id}`), ls.map((l) => ({ group: l.group, label: labelOf(l.group, grouping), value: lastValue(l) })), fmt);
  }
  const p50 = lines(quantileSeries(0.5, groupOf));
  const p99 = lines(quantileSeries(0.99, groupOf), true);
  drawChart($('chart-ttft'), [...p50, ...p99], now, SPAN_MS);
  drawLegend($('legend-ttft'), p50.map((l) => {
    const hi = p99.find((x) => x.group === l.group);
    return { group: l.group, label: labelOf(l.group, grouping), value: [lastValue(l), hi ? lastValue(hi) : null] };
  }), ([a, b]) => `p50 ${ms(a)} · p99 ${ms(b)}`);
}

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

export function bindMetrics() {
  $('usage-refresh').addEventListener('click', loadUsage);
  $('usage-group').addEventListener('change', loadUsage);
  $('metrics-group').addEventListener('change', drawMetrics);
  window.addEventListener('resize', () => { if (!$('view-metrics').hidden) drawMetrics(); });
}
