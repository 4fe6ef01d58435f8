// The graph page: boxes placed by the server, a stepper over the recorded backward pass, a side panel.
"use strict";
(function () {
  const { el, svg, fmt, shape, arrayView, brief } = TT;
  let G = null;            // the payload (tinytensor/viz/graph.py)
  let step = 0;            // 0: before backward; k: the first k steps have run
  let selected = null;     // the tensor number shown in the side panel
  let selectedGroup = null; // or the folded group shown there
  const W = 140, H = 48;

  function put(box, ...items) { for (const x of items.flat()) if (x) box.append(x); }

  function label(n) {
    const who = n.name ? n.name + (n.kind === "op" ? " = " + n.op : "") : n.op;
    return "#" + n.id + " " + who;
  }
  function refOf(i) { const g = G.nodes[i].group; return g === null ? "n" + i : "g" + g; }

  // The gradient each tensor holds after the first k steps (this pass's running sums).
  function gradsAt(k) {
    const grads = {};
    if (k === G.steps.length) {
      for (const n of G.nodes) grads[n.id] = n.grad_after;
      return grads;
    }
    for (const n of G.nodes) grads[n.id] = n.grad_before;
    if (k > 0) grads[G.root] = G.nodes[G.root].grad_after;
    for (let s = 0; s < k; s++) for (const t of G.steps[s].to) grads[t.parent] = t.total;
    return grads;
  }

  function draw() {
    const root = document.getElementById("graph");
    root.innerHTML = "";
    root.setAttribute("width", G.layout.width + W);
    root.setAttribute("height", G.layout.height + 20);
    root.append(svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5",
      markerWidth: "6", markerHeight: "6", orient: "auto-start-reverse" }, svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#999" }))));
    const pos = {};
    for (const b of G.layout.boxes) pos[b.ref] = b;
    for (const [a, b] of G.layout.edges) {
      const p = pos[a], q = pos[b];
      const x1 = p.x + W, y1 = p.y + H / 2, x2 = q.x, y2 = q.y + H / 2, mx = (x1 + x2) / 2;
      // an edge that skips columns arcs over the boxes between (they sit in rows, 16 px apart)
      const d = x2 - x1 > W ? `M ${x1} ${y1 - 12} C ${x1 + 60} ${Math.min(y1, y2) - 44}, ${x2 - 60} ${Math.min(y1, y2) - 44}, ${x2} ${y2 - 12}`
        : `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}`;
      root.append(svg("path", { class: "edge", "data-from": a, "data-to": b, d }));
    }
    for (const b of G.layout.boxes) {
      const isGroup = b.ref[0] === "g", i = Number(b.ref.slice(1));
      const n = isGroup ? null : G.nodes[i];
      const kind = isGroup ? "group" : n.kind;
      const g = svg("g", { class: "box " + kind + (n && n.id === G.root ? " root" : ""), "data-ref": b.ref,
        transform: `translate(${b.x},${b.y})`, onclick: () => (isGroup ? selectGroup(i) : select(i)) });
      if (n && n.name) g.setAttribute("data-name", n.name);
      g.append(svg("rect", { width: W, height: H }));
      if (isGroup) {
        const [head, rest] = G.groups[i].label.split(" (");
        g.append(svg("text", { x: 6, y: 16 }, "folded: " + head));
        g.append(svg("text", { x: 6, y: 32 }, (rest ? "(" + rest + ", " : "(") + G.groups[i].members.length + " tensors)"));
      } else {
        g.append(svg("text", { x: 6, y: 14 }, label(n).slice(0, 22)));
        g.append(svg("text", { x: 6, y: 28, class: "val" }, shape(n.shape) + " v " + brief(n.value)));
        g.append(svg("text", { x: 6, y: 42, class: "grad" }, "g"));
      }
      root.append(g);
    }
  }

  function update() {
    const grads = gradsAt(step);
    for (const box of document.querySelectorAll(".box")) {
      box.classList.remove("current", "receives", "selected");
      const ref = box.getAttribute("data-ref");
      if (ref[0] === "n") box.querySelector(".grad").textContent = "g " + brief(grads[Number(ref.slice(1))]);
    }
    for (const e of document.querySelectorAll(".edge")) e.classList.remove("active");
    const cur = step > 0 && step <= G.steps.length ? G.steps[step - 1] : null;
    if (cur) {
      mark(refOf(cur.node), "current");
      for (const t of cur.to) {
        mark(refOf(t.parent), "receives");
        const e = document.querySelector(`.edge[data-from="${refOf(t.parent)}"][data-to="${refOf(cur.node)}"]`);
        if (e) e.classList.add("active");
      }
    }
    if (selectedGroup !== null) mark("g" + selectedGroup, "selected");
    else if (selected !== null) mark(refOf(selected), "selected");
    document.getElementById("step-label").textContent = step === 0 ? `before backward (step 0 of ${G.steps.length})`
      : step === G.steps.length ? `after backward (step ${step} of ${G.steps.length})` : `step ${step} of ${G.steps.length}`;
    stepDetail(cur);
    if (selectedGroup !== null) selectGroup(selectedGroup, true);
    else if (selected !== null) select(selected, true);
  }

  function mark(ref, cls) {
    const b = document.querySelector(`.box[data-ref="${ref}"]`);
    if (!b) return;
    b.classList.add(cls);
    if (cls === "current") b.scrollIntoView({ block: "nearest", inline: "nearest" });   // follow the stepper
  }

  function stepDetail(cur) {
    const box = document.getElementById("step-detail");
    box.innerHTML = "";
    if (!cur) {
      put(box, el("h2", {}, step === 0 ? "Before backward" : "After backward"),
        el("p", {}, step === 0 ? `Nothing has a gradient yet from this pass. Backward starts at the output #${G.root} with dL/dL = ${G.seed}, then visits each op once, in reverse topological order: every use of a tensor before the tensor itself.`
          : "Every leaf now holds its .grad: the sum over every path from the output. Click a blue box to read it."));
      return;
    }
    const n = G.nodes[cur.node];
    put(box, el("h2", {}, `Step ${step}: ${label(n)}`),
      el("div", {}, "forward: ", el("span", { class: "formula" }, n.forward || n.op)),
      el("div", {}, "local derivative: ", el("span", { class: "formula" }, n.local)),
      n.source ? el("div", { class: "src" }, "backward in " + n.source) : null,
      el("div", {}, `gradient arriving at #${n.id} (dL/d#${n.id}):`), arrayView(cur.grad_in));
    for (const t of cur.to) {
      const p = G.nodes[t.parent];
      put(box, el("div", { class: "contrib", "data-parent": String(t.parent) },
        el("div", {}, `to ${label(p)}: local derivative × incoming gradient =`), arrayView(t.grad),
        t.accumulated ? el("div", {}, el("span", { class: "acc" }, `#${p.id}.grad += `),
          `(used more than once), running sum:`, arrayView(t.total))
          : el("div", {}, `#${p.id}.grad = that (its first contribution)`)));
    }
  }

  function select(i, keep) {
    selected = i;
    selectedGroup = null;
    if (!keep) { update(); return; }
    const n = G.nodes[i], box = document.getElementById("node-detail");
    const grads = gradsAt(step);
    box.innerHTML = "";
    put(box, el("h2", {}, label(n)),
      el("div", { class: "meta" }, `${n.kind === "op" ? "op " + n.op : n.kind === "leaf" ? "leaf (requires grad)" : "constant (no gradient)"}, shape ${shape(n.shape)}, ${n.dtype}` +
        (n.group !== null ? `, folded into "${G.groups[n.group].label}"` : "")),
      n.kind === "op" ? el("div", {}, "forward: ", el("span", { class: "formula" }, n.forward || n.op), " inputs: ",
        n.parents.map((p) => "#" + p).join(", ")) : null,
      n.kind === "op" ? el("div", {}, "local derivative: ", el("span", { class: "formula" }, n.local)) : null,
      n.source ? el("div", { class: "src" }, "backward in " + n.source) : null,
      el("h2", {}, "value"), arrayView(n.value),
      el("h2", {}, `gradient now (step ${step})`), el("div", { id: "grad-now" }, arrayView(grads[i])),
      el("h2", {}, "before backward"), el("div", { id: "grad-before" }, arrayView(n.grad_before)),
      el("h2", {}, "after backward"), el("div", { id: "grad-after" }, arrayView(n.grad_after)));
  }

  function selectGroup(g, keep) {
    selectedGroup = g;
    if (!keep) { update(); return; }
    const group = G.groups[g], box = document.getElementById("node-detail");
    box.innerHTML = "";
    put(box, el("h2", {}, "folded: " + group.label),
      el("p", { class: "hint" }, "These tensors repeat an earlier run of ops (or are the earliest of a big graph); the stepper still visits each one."),
      el("ul", {}, group.members.map((m) => el("li", {}, el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); select(m); } }, label(G.nodes[m]))))));
  }

  function checks() {
    const box = document.getElementById("checks");
    box.innerHTML = "";
    put(box, el("h2", {}, "Finite differences beside autograd"));
    if (!G.checks.length) {
      put(box, el("p", { class: "hint" }, "Pass fn=lambda: <your loss> to viz.show / viz.export to see (f(x+h) - f(x-h)) / 2h here."));
      return;
    }
    const rows = G.checks.map((c) => el("tr", { class: "check" }, el("td", {}, label(G.nodes[c.node])), el("td", {}, "[" + c.index.join(", ") + "]"),
      el("td", { class: "autograd" }, fmt(c.autograd)), el("td", { class: "numeric" }, fmt(c.numeric)),
      el("td", { class: c.rel_error < 1e-2 ? "ok" : "bad" }, fmt(c.rel_error))));
    put(box, el("table", { class: "checks" }, el("tr", {}, el("th", {}, "leaf"), el("th", {}, "element"), el("th", {}, "autograd"),
      el("th", {}, "finite diff."), el("th", {}, "rel. error")), rows));
  }

  function go(k) { step = Math.max(0, Math.min(G.steps.length, k)); update(); }

  async function start() {
    G = await TT.load("graph");
    document.getElementById("title").textContent = G.title + `: ${G.nodes.length} tensors, ${G.steps.length} backward steps`;
    draw();
    checks();
    document.getElementById("first").onclick = () => go(0);
    document.getElementById("prev").onclick = () => go(step - 1);
    document.getElementById("next").onclick = () => go(step + 1);
    document.getElementById("last").onclick = () => go(G.steps.length);
    document.addEventListener("keydown", (e) => {
      if (e.key === "ArrowRight") go(step + 1);
      else if (e.key === "ArrowLeft") go(step - 1);
      else if (e.key === "Home") go(0);
      else if (e.key === "End") go(G.steps.length);
      else return;
      e.preventDefault();
    });
    select(G.root);
    document.body.setAttribute("data-ready", "1");
  }
  window.addEventListener("DOMContentLoaded", () => start().catch((err) => {
    document.getElementById("title").textContent = "could not load the graph: " + err.message;
    throw err;
  }));
})();
