// The training page: every run's events from one server-sent-events stream, drawn as they arrive.
"use strict";
(function () {
  const { el, fmt } = TT;
  const COLORS = ["#3b6fb6", "#d9534f", "#2e8b57", "#8e44ad", "#e08e0b", "#16a2b8"];
  const runs = new Map();          // name -> {color, steps, evals, last}
  const charts = {};
  let events = 0;

  function run(name) {
    if (!runs.has(name)) {
      runs.set(name, { color: COLORS[runs.size % COLORS.length], steps: 0, evals: 0, done: false, last: null });
      legend();
    }
    return runs.get(name);
  }

  function legend() {
    const box = document.getElementById("legend");
    box.innerHTML = "";
    for (const [name, r] of runs) {
      box.append(el("span", { class: "run", "data-run": name }, el("i", { style: `background:${r.color}` }),
        `${name}: ${r.steps} steps, ${r.evals} evaluations${r.done ? " (done)" : ""}` +
        (r.last ? `, last loss ${fmt(r.last)}` : "")));
    }
  }

  function status() {
    document.getElementById("status").textContent = `${events} events from ${runs.size} run(s)`;
    document.body.setAttribute("data-events", String(events));
  }

  function onStep(d) {
    const r = run(d.run);
    r.steps += 1;
    const loss = d.train_loss;
    r.last = loss;
    charts.loss.add(d.run + " step", d.step, loss, { color: r.color });
    charts.lr.add(d.run, d.step, d.lr, { color: r.color });
    if (d.grad_norm !== undefined) charts.grad.add(d.run, d.step, d.grad_norm, { color: r.color });
    if (d.tokens_per_s !== undefined) charts.speed.add(d.run, d.step, d.tokens_per_s, { color: r.color });
  }

  function onEval(d) {
    const r = run(d.run);
    r.evals += 1;
    charts.loss.add(d.run + " train (eval)", d.step, d.train_loss, { color: r.color, dots: true });
    charts.loss.add(d.run + " val", d.step, d.val_loss, { color: r.color, dots: true, dash: true });
    const line = `step ${d.step} | train ${fmt(d.train_loss)} | val ${d.val_loss === null || d.val_loss === undefined ? "n/a" : fmt(d.val_loss)}`;
    document.getElementById("samples").prepend(el("div", { class: "eval", "data-step": String(d.step) },
      el("div", { class: "meta" }, `${d.run}: ${line}`),
      d.sample ? el("div", { class: "sample" }, d.sample) : null));
  }

  function start() {
    charts.loss = new Chart(document.getElementById("chart-loss"));
    charts.lr = new Chart(document.getElementById("chart-lr"));
    charts.grad = new Chart(document.getElementById("chart-grad"), { empty: "no gradient norm yet (an older run's metrics.csv has none)" });
    charts.speed = new Chart(document.getElementById("chart-speed"));
    for (const c of Object.values(charts)) c.draw();
    const source = new EventSource("events");
    const handle = (fn) => (e) => { events += 1; fn(TT.parse(e.data)); legend(); status(); };
    source.addEventListener("run", handle((d) => run(d.run)));
    source.addEventListener("step", handle(onStep));
    source.addEventListener("eval", handle(onEval));
    source.addEventListener("done", handle((d) => { run(d.run).done = true; }));
    source.addEventListener("open", () => document.body.setAttribute("data-ready", "1"));
    status();
  }
  window.addEventListener("DOMContentLoaded", start);
})();
