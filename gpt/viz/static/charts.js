// A small line chart on a canvas: several named series, x and y axes with round ticks, redrawn at
// most once per frame however many points arrive. Hand-written: no plotting library.
"use strict";
window.Chart = class Chart {
  constructor(canvas, opts) {
    this.canvas = canvas;
    this.opts = opts || {};
    this.series = new Map();     // name -> {color, dots, points: [[x, y], ...]}
    this.pending = false;
  }
  add(name, x, y, style) {
    if (!Number.isFinite(x) || y === null || y === undefined || !Number.isFinite(y)) return;
    if (!this.series.has(name)) this.series.set(name, Object.assign({ points: [] }, style));
    this.series.get(name).points.push([x, y]);
    this.count = (this.count || 0) + 1;
    this.canvas.setAttribute("data-points", String(this.count));    // what the page tests read
    this.schedule();
  }
  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }
  static ticks(lo, hi, n) {
    const span = hi - lo || Math.abs(hi) || 1, raw = span / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
    return out;
  }
  draw() {
    const c = this.canvas, ctx = c.getContext("2d"), W = c.width, H = c.height;
    const L = 56, R = 10, T = 10, B = 26;
    ctx.clearRect(0, 0, W, H);
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const s of this.series.values()) for (const [x, y] of s.points) {
      x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
    }
    ctx.font = "11px sans-serif";
    ctx.fillStyle = "#666";
    if (x0 === Infinity) { ctx.fillText(this.opts.empty || "no data yet", L, H / 2); return; }
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
    const pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad;
    const X = (x) => L + (x - x0) / (x1 - x0) * (W - L - R), Y = (y) => H - B - (y - y0) / (y1 - y0) * (H - T - B);
    ctx.strokeStyle = "#eee";
    ctx.lineWidth = 1;
    for (const v of Chart.ticks(y0, y1, 5)) {
      ctx.beginPath(); ctx.moveTo(L, Y(v)); ctx.lineTo(W - R, Y(v)); ctx.stroke();
      ctx.fillText(TT.fmt(v), 4, Y(v) + 4);
    }
    for (const v of Chart.ticks(x0, x1, 6)) ctx.fillText(TT.fmt(v), X(v) - 8, H - 8);
    ctx.strokeStyle = "#999";
    ctx.strokeRect(L, T, W - L - R, H - T - B);
    for (const s of this.series.values()) {
      ctx.strokeStyle = ctx.fillStyle = s.color || "#3b6fb6";
      if (s.dots) {
        for (const [x, y] of s.points) { ctx.beginPath(); ctx.arc(X(x), Y(y), 3.5, 0, 2 * Math.PI); ctx.fill(); }
        if (s.points.length > 1) {
          ctx.lineWidth = 1.5; ctx.setLineDash(s.dash ? [5, 4] : []); ctx.beginPath();
          s.points.forEach(([x, y], i) => (i ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
          ctx.stroke(); ctx.setLineDash([]);
        }
      } else {
        ctx.lineWidth = 1; ctx.globalAlpha = 0.8; ctx.beginPath();
        s.points.forEach(([x, y], i) => (i ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
        ctx.stroke(); ctx.globalAlpha = 1;
      }
    }
  }
};
