// The tokenizer page: train BPE on some text (best pair and count per merge), then encode text with
// the chunks and merges shown one step at a time.
"use strict";
(function () {
  const { el } = TT;
  let result = null, shown = 0, total = 0;

  // a token as a chip; spaces drawn as a visible mark (the chip's title gives its id)
  function tok([id, text], isNew) { return el("span", { class: "tok" + (isNew ? " new" : ""), title: "id " + id }, text.replace(/ /g, "\u2423")); }

  function error(where, err) {
    document.getElementById(where).replaceChildren(el("div", { class: "error" }, err.message));
  }

  async function train() {
    try {
      const r = await TT.post("bpe_train", { text: document.getElementById("train-text").value,
                                             merges: Number(document.getElementById("merges").value) });
      const table = document.getElementById("merge-table");
      table.replaceChildren(el("tr", {}, el("th", {}, "rank"), el("th", {}, "best pair"), el("th", {}, "count"),
        el("th", {}, "new id"), el("th", {}, "token")),
        ...r.merges.map((m) => el("tr", { class: "merge" }, el("td", {}, m.rank),
          el("td", {}, tok(m.pair[0]), " + ", tok(m.pair[1])), el("td", { class: "count" }, m.count),
          el("td", {}, m.id), el("td", {}, tok([m.id, m.text], true)))));
      document.getElementById("which").value = "trained";
      await encode();
    } catch (err) { error("merge-table", err); }
  }

  async function encode() {
    try {
      result = await TT.post("tokenize", { text: document.getElementById("encode-text").value,
                                           which: document.getElementById("which").value });
      total = result.chunks.reduce((a, c) => a + c.states.length - 1, 0);
      shown = total;
      draw();
    } catch (err) { error("chunks", err); }
  }

  // Show the first `shown` merges (counted over all chunks, left to right).
  function draw() {
    const box = document.getElementById("chunks");
    box.innerHTML = "";
    let left = shown;
    for (const c of result.chunks) {
      const k = Math.max(0, Math.min(c.states.length - 1, left));
      left -= k;
      const state = c.states[k];
      const m = state.merged;
      const why = m ? (m.whole ? "the whole chunk is one token" : `merge rank ${m.rank}: ${m.pair.join(" + ")} -> ${m.id}`) : "bytes";
      box.append(el("div", { class: "chunk" }, el("span", { class: "meta" }, JSON.stringify(c.text) + ` (${k}/${c.states.length - 1}: ${why}) `),
        state.tokens.map((t) => tok(t, m && t[0] === m.id))));
    }
    document.getElementById("enc-label").textContent = `merges shown: ${shown} of ${total}`;
    document.getElementById("ids").textContent = shown === total ? "ids: " + JSON.stringify(result.ids) : "";
  }

  async function start() {
    const info = await TT.load("info");
    document.getElementById("train-text").value = info.sample_text;
    document.getElementById("train").onclick = train;
    document.getElementById("encode").onclick = encode;
    document.getElementById("prev").onclick = () => { if (result) { shown = Math.max(0, shown - 1); draw(); } };
    document.getElementById("next").onclick = () => { if (result) { shown = Math.min(total, shown + 1); draw(); } };
    await train();
    document.body.setAttribute("data-ready", "1");
  }
  window.addEventListener("DOMContentLoaded", () => start());
})();
