// The console's Prometheus parsing, rates and quantiles (admin/console/prom.js), run under Node.
// usage: node console_prom_test.mjs SOURCE_DIR  (CTest skips it, exit 77, where node is absent)
import assert from 'node:assert/strict';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const src = process.argv[2];
const prom = await import(pathToFileURL(path.join(src, 'admin/console/prom.js')).href);
const { parseMetrics, sumBy, rates, bucketsBy, quantile, GROUPINGS, hasFamily } = prom;

const text = `# HELP quilt_completion_tokens_total Generated tokens
# TYPE quilt_completion_tokens_total counter
quilt_completion_tokens_total{adapter="",tenant="t1"} 10
quilt_completion_tokens_total{adapter="sql",tenant="t1"} 5
quilt_completion_tokens_total{tenant="t2",adapter="sql"} 7 1700000000000
weird_label{path="a \\"quoted\\" \\\\ back\\nslash,}"} 1.5e3
quilt_queue_depth 3
broken{unterminated="x 4
quilt_time_to_first_token_seconds_bucket{adapter="sql",tenant="t1",le="0.1"} 2
quilt_time_to_first_token_seconds_bucket{adapter="sql",tenant="t1",le="0.5"} 6
quilt_time_to_first_token_seconds_bucket{adapter="sql",tenant="t1",le="+Inf"} 10
vllm:num_requests_waiting 0
nan_gauge NaN
`;
const s = parseMetrics(text);
assert.equal(s.length, 10, 'one sample per well-formed line, the broken one skipped');
assert.deepEqual(s[3].labels, { path: 'a "quoted" \\ back\nslash,}' }, 'escapes in label values');
assert.equal(s[3].value, 1500);
assert.equal(s[4].value, 3);
assert.equal(s[8].name, 'vllm:num_requests_waiting');
assert.ok(Number.isNaN(s[9].value));
assert.ok(hasFamily(s, 'quilt_queue_depth') && !hasFamily(s, 'quilt_requests_total'));

const byTenant = sumBy(s, 'quilt_completion_tokens_total', GROUPINGS.tenant);
assert.deepEqual([...byTenant], [['t1', 15], ['t2', 7]]);
const byAdapter = sumBy(s, 'quilt_completion_tokens_total', GROUPINGS.adapter);
assert.deepEqual([...byAdapter], [['', 10], ['sql', 12]]);
assert.equal(GROUPINGS.version({ adapter: 'sql', version: '3' }), 'sql@3');
assert.equal(GROUPINGS.pair({ tenant: 't1', adapter: 'sql' }), 't1 / sql');

// Rates: per second between two scrapes; a counter that fell (a restart) gives no rate.
const r = rates(new Map([['a', 10], ['b', 50]]), new Map([['a', 30], ['b', 5], ['c', 4]]), 2);
assert.deepEqual([...r], [['a', 10], ['c', 2]]);
assert.equal(rates(new Map(), new Map([['a', 1]]), 0).size, 0);

// Quantiles from bucket deltas, interpolated as histogram_quantile does.
const after = bucketsBy(s, 'quilt_time_to_first_token_seconds', GROUPINGS.adapter).get('sql');
assert.deepEqual([...after], [[0.1, 2], [0.5, 6], [Infinity, 10]]);
// 10 observations: p50 = rank 5, in (0.1, 0.5] holding ranks 3..6 → 0.1 + 0.4 * 3/4 = 0.4.
assert.ok(Math.abs(quantile(0.5, undefined, after) - 0.4) < 1e-12);
// p10 = rank 1 in the first bucket: 0 + 0.1 * 1/2.
assert.ok(Math.abs(quantile(0.1, undefined, after) - 0.05) < 1e-12);
// p99 lands in +Inf: the largest finite bound.
assert.equal(quantile(0.99, undefined, after), 0.5);
// Only what happened in the window counts: before had 2 in the first bucket and 2 in the second.
const before = new Map([[0.1, 2], [0.5, 4], [Infinity, 4]]);
// window: 0 in (0,0.1], 2 in (0.1,0.5], 4 in +Inf → p25 = rank 1.5 in (0.1,0.5] → 0.1 + 0.4*0.75.
assert.ok(Math.abs(quantile(0.25, before, after) - 0.4) < 1e-12);
assert.equal(quantile(0.5, after, after), null, 'nothing observed in the window');
assert.equal(quantile(0.5, undefined, new Map([[0.1, 3]])), null, 'no +Inf bucket: not a histogram');

console.log('console prom.js: all checks passed');
