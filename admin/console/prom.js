// Prometheus text format: a parser, and the rates and quantiles the charts draw, by label group.

// Parses exposition text into [{name, labels: {..}, value}] (comments and blank lines skipped;
// a malformed line is skipped too rather than failing the whole scrape).
export function parseMetrics(text) {
  const out = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line[0] === '#') continue;
    const s = parseSample(line);
    if (s) out.push(s);
  }
  return out;
}

function parseSample(line) {
  let i = 0;
  while (i < line.length && line[i] !== '{' && line[i] !== ' ' && line[i] !== '\t') i++;
  const name = line.slice(0, i);
  if (!name) return null;
  const labels = {};
  if (line[i] === '{') {
    i++;
    for (;;) {
      while (line[i] === ' ' || line[i] === ',') i++;
      if (line[i] === '}') { i++; break; }
      const eq = line.indexOf('=', i);
      if (eq < 0 || line[eq + 1] !== '"') return null;
      const key = line.slice(i, eq).trim();
      let j = eq + 2;
      let value = '';
      while (j < line.length && line[j] !== '"') {
        if (line[j] === '\\' && j + 1 < line.length) {
          const c = line[++j];
          value += c === 'n' ? '\n' : c;
        } else {
          value += line[j];
        }
        j++;
      }
      if (j >= line.length) return null;
      labels[key] = value;
      i = j + 1;
    }
  }
  const fields = line.slice(i).trim().split(/\s+/);
  const value = parseValue(fields[0]);
  return Number.isNaN(value) && fields[0] !== 'NaN' ? null : { name, labels, value };
}

function parseValue(v) {
  if (v === '+Inf' || v === 'Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  return v === undefined || v === '' ? NaN : Number(v);
}

// The label groups the console charts by. A label a series lacks reads as "".
export const GROUPINGS = {
  tenant: (l) => l.tenant ?? '',
  adapter: (l) => l.adapter ?? '',
  version: (l) => (l.adapter ? (l.version ? `${l.adapter}@${l.version}` : l.adapter) : ''),
  pair: (l) => `${l.tenant ?? ''} / ${l.adapter ?? ''}`,
};

// Sums a family's samples by group: Map(group → sum). `where` filters samples.
export function sumBy(samples, name, groupOf, where = () => true) {
  const m = new Map();
  for (const s of samples) {
    if (s.name !== name || !where(s.labels)) continue;
    const g = groupOf(s.labels);
    m.set(g, (m.get(g) || 0) + s.value);
  }
  return m;
}

export const hasFamily = (samples, name) => samples.some((s) => s.name === name);

// Per-second rates between two sums by group (a counter that went down was reset: no rate).
export function rates(before, after, seconds) {
  const out = new Map();
  if (!(seconds > 0)) return out;
  for (const [g, v] of after) {
    const prev = before.get(g) ?? 0;
    if (v >= prev) out.set(g, (v - prev) / seconds);
  }
  return out;
}

// Cumulative bucket counts of histogram `name` by group: Map(group → Map(le → count)).
export function bucketsBy(samples, name, groupOf) {
  const m = new Map();
  for (const s of samples) {
    if (s.name !== `${name}_bucket` || s.labels.le === undefined) continue;
    const g = groupOf(s.labels);
    if (!m.has(g)) m.set(g, new Map());
    const b = m.get(g);
    const le = parseValue(s.labels.le);
    b.set(le, (b.get(le) || 0) + s.value);
  }
  return m;
}

// The q-quantile of the observations made between two bucket snapshots, interpolating linearly
// inside the bucket as Prometheus' histogram_quantile does; null when nothing was observed.
export function quantile(q, beforeBuckets, afterBuckets) {
  const bounds = [...afterBuckets.keys()].sort((a, b) => a - b);
  const cum = bounds.map((le) => afterBuckets.get(le) - ((beforeBuckets && beforeBuckets.get(le)) || 0));
  const total = cum[cum.length - 1];
  if (!(total > 0) || bounds[bounds.length - 1] !== Infinity) return null;
  const rank = q * total;
  for (let i = 0; i < bounds.length; i++) {
    if (cum[i] >= rank) {
      if (bounds[i] === Infinity) return i > 0 ? bounds[i - 1] : null;
      const lo = i > 0 ? bounds[i - 1] : 0;
      const below = i > 0 ? cum[i - 1] : 0;
      const inBucket = cum[i] - below;
      return inBucket > 0 ? lo + (bounds[i] - lo) * ((rank - below) / inBucket) : bounds[i];
    }
  }
  return null;
}
