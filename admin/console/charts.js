// Line charts on <canvas>, drawn by hand: time on x, one line per group, gaps where a value is null.
const PALETTE = ['#2f6fdf', '#e0782f', '#1f8a4c', '#c53030', '#805ad5', '#0f9bb0', '#b7791f',
  '#d53f8c', '#4a5568', '#38a169'];

// A stable color per group name for the session (the same tenant keeps its color).
const colors = new Map();
export function colorOf(group) {
  if (!colors.has(group)) colors.set(group, PALETTE[colors.size % PALETTE.length]);
  return colors.get(group);
}

// A number for an axis label: 0, 0.25, 12, 1.2k.
function short(v) {
  if (v >= 1000) return `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)}k`;
  if (v >= 10 || v === 0) return v.toFixed(0);
  return v >= 1 ? v.toFixed(1) : v.toFixed(2);
}

// A "nice" axis maximum at or above `v` (1, 2 or 5 times a power of ten).
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  // Multiples that split into four even grid steps (5 would give 1.25, 3.75).
  for (const m of [1, 2, 4, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// Draws `series` ([{group, dashed?, points: [{t, v|null}]}]) over the last `spanMs` ending at `now`.
export function drawChart(canvas, series, now, spanMs) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const left = 44;
  const right = 8;
  const top = 8;
  const bottom = 20;
  const pw = w - left - right;
  const ph = h - top - bottom;
  let max = 0;
  for (const s of series) for (const p of s.points) if (p.v !== null && p.v > max) max = p.v;
  const ymax = niceMax(max * 1.05);
  const x = (t) => left + pw * (1 - (now - t) / spanMs);
  const y = (v) => top + ph * (1 - v / ymax);

  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = '#5f6b7a';
  ctx.strokeStyle = '#e3e8ef';
  ctx.lineWidth = 1;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (let i = 0; i <= 4; i++) {
    const v = (ymax * i) / 4;
    ctx.beginPath();
    ctx.moveTo(left, Math.round(y(v)) + 0.5);
    ctx.lineTo(w - right, Math.round(y(v)) + 0.5);
    ctx.stroke();
    ctx.fillText(short(v), left - 6, y(v));
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  const stepMs = 30000;
  for (let ago = 0; ago <= spanMs; ago += stepMs) {
    ctx.fillText(ago === 0 ? 'now' : `-${ago / 1000}s`, Math.min(Math.max(x(now - ago), left + 12), w - right - 12), h - bottom + 5);
  }

  ctx.lineWidth = 1.8;
  ctx.lineJoin = 'round';
  for (const s of series) {
    ctx.strokeStyle = colorOf(s.group);
    ctx.setLineDash(s.dashed ? [5, 4] : []);
    ctx.beginPath();
    let drawing = false;
    for (const p of s.points) {
      if (p.v === null || now - p.t > spanMs) { drawing = false; continue; }
      if (drawing) ctx.lineTo(x(p.t), y(p.v));
      else ctx.moveTo(x(p.t), y(p.v));
      drawing = true;
    }
    ctx.stroke();
    // A dot on the newest point, so that a series with a single point still shows.
    const last = [...s.points].reverse().find((p) => p.v !== null && now - p.t <= spanMs);
    if (last) {
      ctx.setLineDash([]);
      ctx.fillStyle = colorOf(s.group);
      ctx.beginPath();
      ctx.arc(x(last.t), y(last.v), s.dashed ? 2.5 : 3.5, 0, 2 * Math.PI);
      ctx.fill();
    }
  }
  ctx.setLineDash([]);
  if (series.length === 0 || max === 0) {
    ctx.fillStyle = '#9aa5b4';
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.fillText(series.length === 0 ? 'no data yet' : 'idle', left + pw / 2, top + ph / 2);
  }
}

// Fills a legend list: one entry per group, with its current value.
export function drawLegend(list, entries, format) {
  list.replaceChildren(...entries.map(({ group, label, value }) => {
    const li = document.createElement('li');
    const sw = document.createElement('span');
    sw.className = 'swatch';
    sw.style.background = colorOf(group);
    li.append(sw, `${label}: ${value === null || value === undefined ? '–' : format(value)}`);
    return li;
  }));
}
