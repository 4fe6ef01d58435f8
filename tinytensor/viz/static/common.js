// Helpers shared by every tinytensor page: data loading, number formatting, arrays as tables and heatmaps.
// Plain script (no modules, no build step) so that an exported page can inline it and open from file://.
"use strict";
window.TT = (function () {
  // JSON from our server spells NaN and infinities as {"$float": "nan" | "inf" | "-inf"}.
  const SPECIAL = { nan: NaN, inf: Infinity, "-inf": -Infinity };
  function revive(key, v) {
    if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 1 && "$float" in v) {
      return SPECIAL[v.$float];
    }
    return v;
  }
  function parse(text) { return JSON.parse(text, revive); }

  // Data inlined in the page (an exported file) or fetched from the server that serves it.
  async function load(name) {
    const tag = document.getElementById("tt-data-" + name);
    if (tag) return parse(tag.textContent);
    const r = await fetch("data/" + name + ".json");
    const body = parse(await r.text());
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  }

  async function post(name, request) {
    const r = await fetch("api/" + name, { method: "POST", headers: { "Content-Type": "application/json" },
                                           body: JSON.stringify(request) });
    const body = parse(await r.text());
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  }

  // One number, 4 significant digits, as Python's format(v, ".4g") writes it.
  function fmt(v) {
    if (v === null || v === undefined) return "";
    if (Number.isNaN(v)) return "nan";
    if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
    if (v === 0) return "0";
    const a = Math.abs(v);
    if (a >= 1e-4 && a < 1e4) return String(Number(v.toPrecision(4)));
    const [m, e] = v.toExponential(3).split("e");
    const exp = Number(e);
    return String(Number(m)) + "e" + (exp < 0 ? "-" : "+") + String(Math.abs(exp)).padStart(2, "0");
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : String(c));
    }
    return node;
  }

  const SVGNS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }

  function shape(s) { return "(" + s.join(", ") + (s.length === 1 ? ",)" : ")"); }

  // Blue for negative, white for zero, red for positive (scaled by the largest magnitude).
  function color(v, scale) {
    if (!Number.isFinite(v)) return "#b0b";
    const t = Math.max(-1, Math.min(1, scale ? v / scale : 0));
    const c = Math.round(255 * (1 - Math.abs(t)));
    return t >= 0 ? `rgb(255,${c},${c})` : `rgb(${c},${c},255)`;
  }

  // A 2-D array as a heatmap on a canvas; values above zero red, below blue, or one hue when lo >= 0.
  function heat(rows, opts) {
    opts = opts || {};
    const h = rows.length, w = h ? rows[0].length : 0, cell = opts.cell || Math.max(4, Math.floor(160 / Math.max(w, h, 1)));
    const canvas = el("canvas", { width: w * cell, height: h * cell, class: "heat" });
    const ctx = canvas.getContext("2d");
    let scale = 0;
    for (const r of rows) for (const v of r) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) {
      const v = rows[i][j];
      ctx.fillStyle = opts.sequential ? `rgba(200,60,0,${scale ? Math.max(0, v) / scale : 0})` : color(v, scale);
      ctx.fillRect(j * cell, i * cell, cell, cell);
    }
    return canvas;
  }

  // An array summary from the server: every value (small arrays), or statistics and a heatmap.
  function arrayView(s) {
    if (!s) return el("span", { class: "none" }, "None");
    const head = el("div", { class: "meta" }, shape(s.shape) + " " + s.dtype);
    if (s.values) {
      const cols = s.shape.length >= 1 ? s.shape[s.shape.length - 1] : 1;
      const table = el("table", { class: "values" });
      for (let i = 0; i < s.values.length; i += Math.max(cols, 1)) {
        table.append(el("tr", {}, s.values.slice(i, i + Math.max(cols, 1)).map(
          (v) => el("td", { "data-v": String(v) }, fmt(v)))));
      }
      return el("div", { class: "array" }, head, table);
    }
    const st = s.stats;
    return el("div", { class: "array" }, head,
      el("div", { class: "stats" }, `min ${fmt(st.min)}  max ${fmt(st.max)}  mean ${fmt(st.mean)}  std ${fmt(st.std)}  norm ${fmt(st.norm)}` +
        (st.nonfinite ? `  non-finite ${st.nonfinite}` : "")), heat(s.heat));
  }

  // A short text for a box: the value of a one-element array, else its L2 norm.
  function brief(s) {
    if (!s) return "None";
    if (s.values && s.values.length === 1) return fmt(s.values[0]);
    if (s.values) return "norm " + fmt(Math.sqrt(s.values.reduce((a, v) => a + v * v, 0)));
    return "norm " + fmt(s.stats.norm);
  }

  return { parse, load, post, fmt, el, svg, shape, heat, arrayView, brief, color };
})();
