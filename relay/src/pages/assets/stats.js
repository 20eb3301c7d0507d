// Draws the /stats charts as hand-written SVG from /stats/history.json and refreshes them in
// place. No library, no network but this relay, no innerHTML: every node is built with the DOM.
'use strict';
(function () {
  const NS = 'http://www.w3.org/2000/svg';
  const CHARTS = {
    appends: { unit: 'appends/s', series: [{ key: 'appends_per_s', label: 'appends stored/s' }] },
    bytes: { unit: 'bytes/s', series: [{ key: 'bytes_per_s', label: 'bytes stored/s' }] },
    slots: {
      unit: 'slots',
      series: [
        { key: 'slots', label: 'slots held' },
        { key: 'active_slots', label: 'active (stored an append)' },
      ],
    },
    streams: { unit: 'streams', series: [{ key: 'streams', label: 'open streams' }] },
    batch: { unit: 'appends/commit', series: [{ key: 'batch_mean', label: 'mean batch' }] },
    latency: {
      unit: 'ms',
      series: [
        { key: 'commit_p50_ms', label: 'p50' },
        { key: 'commit_p90_ms', label: 'p90' },
        { key: 'commit_p99_ms', label: 'p99' },
      ],
    },
  };
  const W = 600, H = 230, L = 62, R = 12, T = 28, B = 34;
  let range = 'hour';
  let last = null;

  function el(name, attrs, text) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // 0.5, 1, 2, 5 × 10^n above the largest value.
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function fmt(v, unit) {
    if (unit === 'bytes/s') {
      const u = ['B', 'KiB', 'MiB', 'GiB'];
      let i = 0;
      while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
      return (v >= 10 || i === 0 ? Math.round(v) : v.toFixed(1)) + ' ' + u[i];
    }
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
    if (a >= 1e4) return (v / 1e3).toFixed(0) + 'k';
    if (a >= 100 || Number.isInteger(v)) return String(Math.round(v));
    return v.toFixed(a >= 10 ? 1 : 2);
  }

  function clock(ms, withDate) {
    const d = new Date(ms);
    const hh = String(d.getHours()).padStart(2, '0');
    const mm = String(d.getMinutes()).padStart(2, '0');
    if (withDate) return hh + ':' + mm;
    return hh + ':' + mm + ':' + String(d.getSeconds()).padStart(2, '0');
  }

  function draw(fig, spec, series, nowMs) {
    const old = fig.querySelector('svg');
    if (old) old.remove();
    const span = series.step_ms * series.points_max;
    const x0 = nowMs - span;
    const pts = series.points.filter((p) => p.t_ms >= x0 && p.t_ms <= nowMs);
    let max = 0;
    for (const s of spec.series) for (const p of pts) if (p[s.key] !== null && p[s.key] > max) max = p[s.key];
    // Bytes get binary steps (5, 10, 15, 20 KiB), everything else decimal ones.
    const scale = spec.unit === 'bytes/s' && max >= 1024 ? Math.pow(1024, Math.floor(Math.log(max) / Math.log(1024))) : 1;
    const yMax = niceMax(max / scale) * scale;
    const px = (t) => L + ((t - x0) / span) * (W - L - R);
    const py = (v) => T + (1 - v / yMax) * (H - T - B);
    const svg = el('svg', {
      viewBox: '0 0 ' + W + ' ' + H, role: 'img',
      'aria-label': fig.querySelector('figcaption').textContent + ' in ' + spec.unit,
      'data-points': pts.length, 'data-y-max': yMax, 'data-x0': x0, 'data-x1': nowMs,
    });
    // Y axis: four divisions, grid lines, labels, unit.
    for (let i = 0; i <= 4; i++) {
      const v = (yMax * i) / 4, y = py(v);
      svg.append(el('line', { class: 'grid', x1: L, x2: W - R, y1: y, y2: y }));
      svg.append(el('text', { x: L - 6, y: y + 4, 'text-anchor': 'end', class: 'tick' }, fmt(v, spec.unit)));
    }
    svg.append(el('text', { x: 12, y: (T + H - B) / 2, 'text-anchor': 'middle', class: 'unit',
      transform: 'rotate(-90 12 ' + (T + H - B) / 2 + ')' }, spec.unit));
    // X axis: five ticks of local time.
    svg.append(el('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
    svg.append(el('line', { class: 'axis', x1: L, x2: L, y1: T, y2: H - B }));
    for (let i = 0; i <= 4; i++) {
      const t = x0 + (span * i) / 4, x = px(t);
      svg.append(el('line', { class: 'axis', x1: x, x2: x, y1: H - B, y2: H - B + 4 }));
      svg.append(el('text', { x: x, y: H - B + 16, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle', class: 'tick' },
        clock(t, range === 'day')));
    }
    svg.append(el('text', { x: (L + W - R) / 2, y: H - 2, 'text-anchor': 'middle', class: 'unit' }, 'local time'));
    // Legend, top right.
    let lx = W - R;
    for (let i = spec.series.length - 1; i >= 0; i--) {
      const label = spec.series[i].label;
      const w = 18 + label.length * 6.5;
      lx -= w;
      svg.append(el('rect', { class: 's' + i, x: lx, y: 8, width: 10, height: 10, rx: 2 }));
      svg.append(el('text', { class: 'legend', x: lx + 14, y: 17 }, label));
    }
    if (pts.length === 0) {
      svg.append(el('text', { class: 'empty', x: (L + W - R) / 2, y: (T + H - B) / 2, 'text-anchor': 'middle' },
        'no points yet: the first one lands ' + Math.round(series.step_ms / 1000) + ' s after start'));
    }
    spec.series.forEach((s, i) => {
      // One path, broken wherever a point is missing (no commits, or the relay was down).
      let d = '', prev = null;
      const g = el('g', { class: 'series', 'data-series': s.key });
      for (const p of pts) {
        const v = p[s.key];
        if (v === null || v === undefined) { prev = null; continue; }
        const x = px(p.t_ms).toFixed(1), y = py(v).toFixed(1);
        const joined = prev !== null && p.t_ms - prev <= series.step_ms * 1.5;
        d += (joined ? 'L' : 'M') + x + ' ' + y;
        prev = p.t_ms;
        const c = el('circle', { class: 'pt s' + i, cx: x, cy: y, r: 2.5, 'data-t': p.t_ms, 'data-v': v });
        c.append(el('title', {}, clock(p.t_ms, false) + ' ' + s.label + ': ' + fmt(v, spec.unit) + ' ' + spec.unit));
        g.append(c);
      }
      if (d) g.prepend(el('path', { class: 'line s' + i, d: d }));
      svg.append(g);
    });
    fig.append(svg);
  }

  function render() {
    if (!last) return;
    const series = last[range];
    for (const fig of document.querySelectorAll('figure.chart')) {
      const spec = CHARTS[fig.dataset.chart];
      if (spec) draw(fig, spec, series, last.now_ms);
      fig.dataset.generated = String(last.now_ms);
      fig.dataset.range = range;
    }
    document.body.dataset.generated = String(last.now_ms);
    document.body.dataset.range = range;
  }

  function status(text) {
    const s = document.getElementById('updated');
    if (s) s.textContent = text;
  }

  let refreshMs = 5000;
  async function refresh() {
    try {
      const r = await fetch('/stats/history.json', { cache: 'no-store', credentials: 'omit' });
      if (!r.ok) throw new Error('HTTP ' + r.status);
      last = await r.json();
      refreshMs = Math.max(1000, last.refresh_ms || 5000);
      render();
      status('Updated ' + clock(last.now_ms, false) + '.');
    } catch (e) {
      status('Could not refresh (' + e.message + '); retrying.');
    }
    setTimeout(refresh, refreshMs);
  }

  for (const b of document.querySelectorAll('button[data-range]')) {
    b.addEventListener('click', () => {
      range = b.dataset.range;
      for (const o of document.querySelectorAll('button[data-range]')) o.setAttribute('aria-pressed', String(o === b));
      render();
    });
  }
  refresh();
})();
