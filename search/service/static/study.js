// Study page: counts and best, best-so-far against trials and seconds, learning curves of the top
// trials, each parameter against the score, and the trial table. Polls the study's summary and
// redraws whatever changed, so a running study's page moves on its own.
"use strict";

(() => {
  const { api, el, fmt, seconds, when, apiStudy, showMessage, badge, runBadge, params: paramText } = HP;
  const name = decodeURIComponent(window.location.pathname.replace(/^\/studies\//, "").replace(/\/$/, ""));
  const base = apiStudy(name);
  const main = document.getElementById("main");
  const message = document.getElementById("message");
  document.title = `${name} · hpsearch`;

  const fact = (label, id) => el("div", { class: "fact" }, el("span", { class: "label" }, label),
    el("span", { class: "value", id }));
  const stopButton = el("button", { id: "stop", class: "secondary", hidden: true, onclick: stop }, "Stop");
  const resumeButton = el("button", { id: "resume", class: "secondary", hidden: true, onclick: resume }, "Resume");
  const subtitle = el("p", { class: "muted", id: "subtitle" });
  main.append(
    el("h1", { id: "study-name" }, name), subtitle,
    el("div", { class: "facts" }, fact("trials", "trial-count"), fact("complete", "count-complete"),
      fact("pruned", "count-pruned"), fact("failed", "count-failed"), fact("running", "count-running"),
      fact("best", "best-value"), fact("best trial", "best-trial"), fact("status", "status")),
    el("div", { class: "toolbar" }, stopButton, resumeButton, el("a", { id: "compare-link", href: "/compare" },
      "compare with other studies")),
  );
  const chart = (id) => el("div", { class: "card", id });
  const historyTrials = chart("history-trials"), historySeconds = chart("history-seconds");
  const curves = chart("curves"), losses = chart("loss-curves");
  const paramsGrid = el("div", { class: "grid small", id: "param-plots" });
  main.append(el("h2", {}, "Best so far"), el("div", { class: "grid" }, historyTrials, historySeconds),
    el("h2", {}, "Learning curves of the top trials"), el("div", { class: "grid" }, curves, losses),
    el("h2", {}, "Parameters against the score"), paramsGrid);

  // -- trial table ----------------------------------------------------------------------------------
  const PAGE = 25;
  const table = { offset: 0, sort: "number", desc: false, states: new Set() };
  const sortSelect = el("select", { id: "sort", onchange: () => { table.sort = sortSelect.value; table.offset = 0; loadTrials(); } },
    ...["number", "value", "duration", "started"].map((key) => el("option", { value: key }, key)));
  const descBox = el("input", { type: "checkbox", id: "desc", onchange: () => { table.desc = descBox.checked; table.offset = 0; loadTrials(); } });
  const stateBoxes = ["complete", "pruned", "failed", "running"].map((state) => el("label", {},
    el("input", { type: "checkbox", value: state, onchange: (e) => {
      e.target.checked ? table.states.add(state) : table.states.delete(state);
      table.offset = 0; loadTrials();
    } }), ` ${state}`));
  const pageInfo = el("span", { class: "muted", id: "page-info" });
  const prev = el("button", { class: "secondary", onclick: () => { table.offset = Math.max(0, table.offset - PAGE); loadTrials(); } }, "‹ previous");
  const next = el("button", { class: "secondary", onclick: () => { table.offset += PAGE; loadTrials(); } }, "next ›");
  const trialBody = el("tbody");
  main.append(el("h2", {}, "Trials"),
    el("div", { class: "toolbar" }, el("span", {}, "sort by"), sortSelect, el("label", {}, descBox, " descending"),
      el("span", { class: "muted" }, "only:"), ...stateBoxes),
    el("table", { id: "trials" }, el("thead", {}, el("tr", {},
      el("th", { class: "num" }, "#"), el("th", {}, "state"), el("th", { class: "num" }, "value"),
      el("th", { class: "num" }, "epochs"), el("th", { class: "num" }, "seconds"), el("th", {}, "params"),
      el("th", {}, "error"))), trialBody),
    el("div", { class: "pager" }, prev, next, pageInfo));

  const modelsBox = el("div", { id: "models" });
  const details = el("pre", { id: "details" });
  main.append(el("h2", {}, "Retrained models"), modelsBox,
    el("details", {}, el("summary", {}, "Settings, search space and data"), details));

  let study = null;
  let bestNumber = null;

  async function loadTrials() {
    const query = new URLSearchParams({ sort: table.sort, desc: table.desc, limit: PAGE, offset: table.offset });
    for (const state of table.states) query.append("state", state);
    const page = await api(`${base}/trials?${query}`);
    trialBody.replaceChildren();
    for (const t of page.trials) {
      trialBody.append(el("tr", { class: t.number === bestNumber ? "best" : null, "data-number": t.number },
        el("td", { class: "num", title: t.copied_from ? `copied from study ${t.copied_from.study} #${t.copied_from.number} by --warm-start` : null },
          t.copied_from ? `${t.number} (copied)` : t.number), el("td", {}, badge(t.state)),
        el("td", { class: "num" }, fmt(t.value)), el("td", { class: "num" }, t.epochs_run),
        el("td", { class: "num" }, t.duration_s === null ? "–" : t.duration_s.toFixed(1)),
        el("td", { class: "params" }, paramText(t.params)),
        el("td", { class: "error" }, (t.error || "").slice(0, 160))));
    }
    if (!page.trials.length) trialBody.append(el("tr", {}, el("td", { colspan: 7, class: "empty" }, "no trials match")));
    const last = Math.min(page.total, table.offset + page.trials.length);
    pageInfo.textContent = page.total ? `${table.offset + 1}–${last} of ${page.total}` : "";
    prev.disabled = table.offset === 0;
    next.disabled = last >= page.total;
  }

  function drawHistory(history) {
    const points = history.points;
    const better = study.direction === "minimize" ? (a, b) => a < b : (a, b) => a > b;
    const byNumber = [...points].sort((a, b) => a.number - b.number);
    let running = null;
    const steps = [];
    for (const p of byNumber) {
      if (p.value !== null && (running === null || better(p.value, running))) running = p.value;
      if (running !== null) steps.push([p.number, running]);
    }
    const valued = points.filter((p) => p.value !== null);
    HPChart.draw(historyTrials, { title: "best so far against trial number", xLabel: "trial number", xInteger: true,
      yLabel: study.objective, series: [
        { name: "complete trial", mode: "dots", points: valued.map((p) => [p.number, p.value]) },
        { name: "best so far", mode: "step", color: "#d9480f", points: steps },
      ] });
    HPChart.draw(historySeconds, { title: "best so far against time", xLabel: "seconds since the first trial started", xZero: true,
      yLabel: study.objective, series: [
        { name: "complete trial", mode: "dots", points: valued.map((p) => [p.wall_s, p.value]) },
        { name: "best so far", mode: "step", color: "#d9480f",
          points: points.filter((p) => p.best !== null).map((p) => [p.wall_s, p.best]) },
      ] });
  }

  function meanCurve(trialCurves, metric) {
    if (trialCurves[metric]) return trialCurves[metric];
    const folds = Object.entries(trialCurves).filter(([key]) => new RegExp(`^split\\d+_${metric}$`).test(key)).map(([, v]) => v);
    if (!folds.length) return [];
    const length = Math.max(...folds.map((f) => f.length));
    return Array.from({ length }, (_, i) => {
      const seen = folds.map((f) => f[i]).filter((v) => v !== null && v !== undefined);
      return seen.length ? seen.reduce((a, b) => a + b, 0) / seen.length : null;
    });
  }

  function drawCurves(best) {
    const top = best ? best.top : [];
    const line = (values) => values.map((v, i) => [i + 1, v]).filter(([, v]) => v !== null);
    HPChart.draw(curves, { title: `${study.objective} per epoch, top ${top.length}`, xLabel: "epoch", xInteger: true,
      yLabel: study.objective, empty: "no completed trial yet",
      series: top.map((t) => ({ name: `#${t.number} (${fmt(t.value)})`, mode: "line", points: line(t.objective_curve || []) })) });
    const lossSeries = [];
    top.forEach((t, i) => {
      const color = HPChart.PALETTE[i % HPChart.PALETTE.length];
      lossSeries.push({ name: `#${t.number} val_loss`, mode: "line", color, points: line(meanCurve(t.curves || {}, "val_loss")) });
      lossSeries.push({ name: `#${t.number} loss`, mode: "line", color, dash: "4 3", width: 1.5,
        points: line(meanCurve(t.curves || {}, "loss")) });
    });
    HPChart.draw(losses, { title: "loss (dashed) and validation loss per epoch", xLabel: "epoch", yLabel: "loss", xInteger: true,
      empty: "no completed trial yet", series: lossSeries, legend: top.length <= 3 });
  }

  function drawParams(trials) {
    const space = (study.space && study.space.params) || {};
    paramsGrid.replaceChildren();
    const names = Object.keys(space);
    if (!names.length) paramsGrid.append(el("p", { class: "muted" }, "this space tunes no parameter"));
    for (const param of names) {
      const spec = space[param];
      const box = el("div", { class: "card", "data-param": param });
      paramsGrid.append(box);
      const valued = trials.filter((t) => t.value !== null && t.params[param] !== undefined);
      if (spec.type === "categorical") {
        const categories = spec.choices.map(String);
        HPChart.draw(box, { title: param, yLabel: study.objective, xCategories: categories, height: 240, width: 420,
          legend: false, series: [{ mode: "dots", points: valued.map((t) => [categories.indexOf(String(t.params[param])), t.value])
            .filter(([x]) => x >= 0) }] });
      } else {
        HPChart.draw(box, { title: param + (spec.log ? " (log scale)" : ""), yLabel: study.objective, xLog: !!spec.log,
          xInteger: spec.type === "int",
          height: 240, width: 420, legend: false,
          series: [{ mode: "dots", points: valued.map((t) => [Number(t.params[param]), t.value]) }] });
      }
    }
  }

  function drawModels(best) {
    const models = best ? best.models : [];
    modelsBox.replaceChildren();
    if (!models.length) {
      modelsBox.append(el("p", { class: "muted" }, `none yet: \`hpsearch retrain ${name}\` trains the best configuration, tests it and exports it`));
      return;
    }
    const rows = models.map((m) => el("tr", {},
      el("td", {}, el("a", { href: `/studies/${encodeURIComponent(name)}/models/${m.id}` }, `model ${m.id}`)),
      el("td", {}, `trial #${m.trial}`), el("td", {}, paramText(m.test_metrics)),
      el("td", { class: "num" }, m.epochs_run), el("td", {}, m.stop_reason || "–"), el("td", { class: "muted" }, when(m.created_at))));
    modelsBox.append(el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "model"), el("th", {}, "config of"),
      el("th", {}, "test metrics (held-out test split)"), el("th", { class: "num" }, "epochs"), el("th", {}, "stopped"),
      el("th", {}, "created"))), el("tbody", {}, rows)));
  }

  function drawSummary(s) {
    subtitle.replaceChildren(el("span", { class: "engine" }, s.engine), ` / ${s.algorithm} · ${s.direction} ${s.objective} · data ${s.data}` +
      (s.dataset && s.dataset.summary ? ` (${s.dataset.summary})` : ""));
    const set = (id, value) => { document.getElementById(id).textContent = value; };
    set("trial-count", s.trials);
    set("count-complete", s.states.COMPLETE);
    set("count-pruned", s.states.PRUNED);
    set("count-failed", s.states.FAILED);
    set("count-running", s.states.RUNNING);
    set("best-value", fmt(s.best_value));
    const status = document.getElementById("status");
    status.replaceChildren(runBadge(s.run) || (s.run.last_launch && s.run.last_launch.error
      ? el("span", { class: "badge FAILED" }, s.run.last_launch.error) : "not running"));
    stopButton.hidden = !(s.run.running && s.run.launched_here) || s.run.stopping;
    resumeButton.hidden = s.run.running;
    document.getElementById("compare-link").href = `/compare?study=${encodeURIComponent(name)}`;
  }

  let seen = null;
  async function refresh() {
    const summary = await api(base);
    if (message.classList.contains("error")) showMessage(message, "");
    study = summary;
    drawSummary(summary);
    const key = JSON.stringify([summary.trials, summary.states, summary.updated_at, summary.models]);
    if (key !== seen) {
      const [history, best, complete] = await Promise.all([
        api(`${base}/history`),
        // Until a trial completes there is no best (the API answers 404): do not ask.
        summary.states.COMPLETE ? api(`${base}/best?top=5&curves=true`) : Promise.resolve(null),
        api(`${base}/trials?state=complete&state=pruned`),
      ]);
      bestNumber = best ? best.number : null;
      document.getElementById("best-trial").textContent = !best ? "–"
        : best.copied_from ? `#${best.number} (copied from ${best.copied_from.study} #${best.copied_from.number})` : `#${best.number}`;
      drawHistory(history);
      drawCurves(best);
      drawParams(complete.trials);
      drawModels(best);
      await loadTrials();
      details.textContent = JSON.stringify({ settings: summary.settings, space: summary.space, dataset: summary.dataset,
        versions: summary.versions }, null, 2);
      seen = key;
    }
    return summary.run.running ? 2000 : 5000;
  }

  const poller = HP.poll(refresh, (wait) => wait, (error) => showMessage(message, error.message));

  async function stop() {
    stopButton.disabled = true;
    showMessage(message, "stopping: the trial in flight is recorded as interrupted…", "info");
    try {
      const result = await api(`${base}/stop`, { method: "POST", body: {} });
      const numbers = (result.interrupted_trials || []).map((n) => `#${n}`).join(", ");
      showMessage(message, result.stopped ? `stopped${numbers ? `; interrupted trial ${numbers} will be retried on resume` : ""}`
        : "still stopping…", "info");
    } catch (error) { showMessage(message, error.message); }
    stopButton.disabled = false;
    poller.now();
  }

  async function resume() {
    resumeButton.disabled = true;
    try {
      await api(`${base}/resume`, { method: "POST", body: {} });
      showMessage(message, "resumed", "info");
    } catch (error) { showMessage(message, error.message); }
    resumeButton.disabled = false;
    poller.now();
  }
})();
