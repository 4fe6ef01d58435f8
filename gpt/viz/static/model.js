// The model page: a prompt's next-token distribution (raw and after temperature, top-k, top-p), token by
// token, and the attention weights of each layer and head as a heatmap.
"use strict";
(function () {
  const { el, fmt } = TT;
  let ids = null, last = null;
  const $ = (id) => document.getElementById(id);

  function settings() {
    return { temperature: Number($("temperature").value), top_k: Number($("top-k").value) || null,
             top_p: Number($("top-p").value) || null, seed: Number($("seed").value) || 0 };
  }

  async function run(fromText) {
    try {
      const req = Object.assign(settings(), fromText || ids === null ? { text: $("prompt").value } : { ids });
      last = await TT.post("next", req);
      ids = last.ids;
      draw();
    } catch (err) {
      $("probs").replaceChildren(el("tr", {}, el("td", { class: "error" }, err.message)));
    }
  }

  const shown = (t) => t.replace(/ /g, "\u2423");      // spaces made visible

  function draw() {
    const top = last.top.length ? last.top[0].p : 1, topRaw = Math.max(...last.top.map((t) => t.p_raw), 1e-12);
    $("tokens").replaceChildren(...last.tokens.map((t, i) => el("span", { class: "tok", title: "id " + last.ids[i] }, shown(t))));
    $("kept").textContent = `(${last.kept} tokens keep probability; sampled: ${JSON.stringify(last.sampled_text)})`;
    $("probs").replaceChildren(el("tr", {}, el("th", {}, "token"), el("th", {}, "p (filtered)"), el("th", {}, "p (temperature 1, no filter)")),
      ...last.top.map((t) => el("tr", { class: "prob", "data-id": String(t.id) }, el("td", {}, el("span", { class: "tok" }, shown(t.text))),
        el("td", {}, el("span", { class: "bar", style: `width:${Math.round(t.p / top * 160)}px` }), " ", el("span", { class: "p" }, fmt(t.p))),
        el("td", {}, el("span", { class: "bar raw", style: `width:${Math.round(t.p_raw / topRaw * 160)}px` }), " ", el("span", { class: "p-raw" }, fmt(t.p_raw))))));
    const layer = $("layer"), head = $("head");
    const L = last.attention.length, H = L ? last.attention[0].length : 0;
    if (layer.options.length !== L) layer.replaceChildren(...Array.from({ length: L }, (_, i) => el("option", { value: i }, "layer " + i)));
    if (head.options.length !== H) head.replaceChildren(...Array.from({ length: H }, (_, i) => el("option", { value: i }, "head " + i)));
    attention();
  }

  function attention() {
    if (!last || !last.attention.length) return;
    const m = last.attention[Number($("layer").value) || 0][Number($("head").value) || 0];
    const labels = last.attention_tokens;
    const cell = Math.max(6, Math.min(48, Math.floor(420 / labels.length)));
    $("attention").replaceChildren(TT.heat(m, { cell, sequential: true }),
      el("div", { class: "mono" }, labels.map((t, i) => `${i}:${JSON.stringify(t)}`).join("  ")));
  }

  async function add(which) {
    if (!last) await run(true);
    ids = last.ids.concat([which === "greedy" ? last.top[0].id : last.sampled]);
    $("prompt").value = last.tokens.join("") + (which === "greedy" ? last.top[0].text : last.sampled_text);
    await run(false);
  }

  async function start() {
    const info = await TT.load("model");
    document.getElementById("title").textContent = `${info.family} from ${info.folder}, ${info.n_layers} layers, ${info.vocab_size} ids`;
    if (!info.tokenizer) {
      $("prompt").value = "1 2 3";
      $("tokens").before(el("div", { class: "hint" }, "This folder has no tokenizer: type token ids separated by spaces."));
    }
    $("run").onclick = () => run(true);
    $("step").onclick = () => add("sampled");
    $("greedy").onclick = () => add("greedy");
    $("temperature").oninput = () => { $("t-val").textContent = $("temperature").value; };
    for (const id of ["temperature", "top-k", "top-p", "seed"]) $(id).onchange = () => run(ids === null);
    $("prompt").oninput = () => { ids = null; };
    $("layer").onchange = attention;
    $("head").onchange = attention;
    await run(true);
    document.body.setAttribute("data-ready", "1");
  }
  window.addEventListener("DOMContentLoaded", () => start());
})();
