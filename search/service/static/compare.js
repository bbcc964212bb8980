// Compare page: studies of any engines side by side, best so far against epochs trained, training
// seconds and trials, and each study's best at the budget every one of them has spent.
"use strict";

(() => {
  const { api, el, fmt, seconds, studyUrl, showMessage, params: paramText } = HP;
  const main = document.getElementById("main");
  const message = document.getElementById("message");
  const names = new URLSearchParams(window.location.search).getAll("study");

  const picker = el("select", { id: "pick", multiple: true, size: 6 });
  const go = el("button", { onclick: () => {
    const chosen = [...picker.selectedOptions].map((o) => `study=${encodeURIComponent(o.value)}`);
    window.location.href = `/compare?${chosen.join("&")}`;
  } }, "Compare");
  main.append(el("h1", {}, "Compare studies"),
    el("div", { class: "toolbar" }, picker, go, el("span", { class: "muted" }, "pick two or more (ctrl/shift-click)")));
  api("/api/studies").then((studies) => {
    for (const s of studies) picker.append(el("option", { value: s.name, selected: names.includes(s.name) }, `${s.name} (${s.engine}/${s.algorithm})`));
  }).catch((error) => showMessage(message, error.message));
  if (!names.length) return;

  const tableBox = el("div", { id: "compare-table" });
  const equalBox = el("div", { id: "equal-budget" });
  const byEpochs = el("div", { class: "card", id: "by-epochs" });
  const bySeconds = el("div", { class: "card", id: "by-seconds" });
  const byTrials = el("div", { class: "card", id: "by-trials" });
  const notes = el("ul", { class: "muted", id: "notes" });
  main.append(tableBox, el("h2", {}, "At equal budget"), equalBox,
    el("h2", {}, "Best so far"), el("div", { class: "grid" }, byEpochs, bySeconds, byTrials), notes);

  function render(result) {
    const rows = result.studies;
    const header = el("tr", {}, ...["study", "engine", "algorithm", "objective", "trials", "complete", "pruned", "failed",
      "running", "epochs", "seconds", "best (search)", "test (retrained)"].map((h) => el("th", {}, h)));
    const body = rows.map((r) => el("tr", { "data-study": r.study },
      el("td", {}, el("a", { href: studyUrl(r.study) }, r.study)), el("td", { class: "engine" }, r.engine),
      el("td", {}, r.algorithm), el("td", {}, `${r.objective} (${r.direction === "minimize" ? "min" : "max"})`),
      el("td", { class: "num" }, r.trials), el("td", { class: "num" }, r.states.COMPLETE),
      el("td", { class: "num" }, r.states.PRUNED), el("td", { class: "num" }, r.states.FAILED),
      el("td", { class: "num" }, r.states.RUNNING),
      el("td", { class: "num" }, r.folds_per_trial === 1 ? r.epochs_total : `${r.epochs_total} × ${r.folds_per_trial} folds`),
      el("td", { class: "num" }, seconds(r.seconds_total)),
      el("td", { class: "num", "data-field": "best" }, r.best_value === null ? "–" : `${fmt(r.best_value)} (#${r.best_trial})`),
      el("td", {}, r.retrained ? paramText(r.retrained.test_metrics) + (r.retrained.best_config ? "" : ` (trial #${r.retrained.trial}, not the best)`) : "–")));
    tableBox.replaceChildren(el("table", { id: "compare" }, el("thead", {}, header), el("tbody", {}, body)));

    const equal = result.equal_budget;
    const eqRows = rows.map((r) => el("tr", {}, el("td", {}, r.study), el("td", { class: "engine" }, r.engine),
      el("td", { class: "num" }, equal.epochs ? fmt(equal.epochs.best[r.study]) : "–"),
      el("td", { class: "num" }, equal.seconds ? fmt(equal.seconds.best[r.study]) : "–")));
    equalBox.replaceChildren(el("table", { id: "equal" }, el("thead", {}, el("tr", {}, el("th", {}, "study"), el("th", {}, "engine"),
      el("th", { class: "num" }, equal.epochs ? `best within ${equal.epochs.limit} epochs` : "best at equal epochs"),
      el("th", { class: "num" }, equal.seconds ? `best within ${seconds(equal.seconds.limit)} of training` : "best at equal seconds"))),
    el("tbody", {}, eqRows)));

    const series = (key) => result.histories.map((h, i) => ({
      name: `${h.study} (${rows[i].engine})`, mode: "step",
      points: h.points.filter((p) => p.best !== null).map((p) => [key === "trials" ? h.points.indexOf(p) + 1 : p[key], p.best]),
    }));
    const objective = rows[0].objective;
    HPChart.draw(byEpochs, { title: "best so far against epochs trained", xZero: true, xInteger: true, xLabel: "epochs trained (all folds)", yLabel: objective, series: series("epochs") });
    HPChart.draw(bySeconds, { title: "best so far against training seconds", xZero: true, xLabel: "seconds of training (sum over trials)", yLabel: objective, series: series("train_s") });
    HPChart.draw(byTrials, { title: "best so far against trials finished", xZero: true, xInteger: true, xLabel: "trials finished", yLabel: objective, series: series("trials") });
    notes.replaceChildren(...result.notes.map((n) => el("li", {}, n)));
  }

  HP.poll(async () => {
    const query = names.map((n) => `study=${encodeURIComponent(n)}`).join("&");
    const result = await api(`/api/compare?${query}`);
    showMessage(message, "");
    render(result);
    return result.studies.some((r) => r.states.RUNNING > 0) ? 3000 : 10000;
  }, (wait) => wait, (error) => showMessage(message, error.message));
})();
