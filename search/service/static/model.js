// Model page: a retrained model's test metrics, its card, and downloads of model.keras and the card.
"use strict";

(() => {
  const { api, el, fmt, when, studyUrl, apiStudy, showMessage, params: paramText } = HP;
  const match = window.location.pathname.match(/^\/studies\/(.+)\/models\/(\d+)\/?$/);
  const main = document.getElementById("main");
  const message = document.getElementById("message");
  if (!match) { showMessage(message, "this address names no model"); return; }
  const name = decodeURIComponent(match[1]);
  const id = match[2];
  const base = `${apiStudy(name)}/models/${id}`;

  api(base).then((model) => {
    document.title = `model ${id} of ${name} · hpsearch`;
    const metrics = Object.entries(model.test_metrics || {});
    const card = model.card || {};
    const downloads = el("div", { class: "toolbar" },
      model.model_available ? el("a", { href: `${base}/model.keras`, id: "download-model", download: "" }, "download model.keras")
        : el("span", { class: "muted" }, "model.keras is no longer on disk"),
      model.card_available ? el("a", { href: `${base}/model.json`, id: "download-card", download: "" }, "download model card (model.json)")
        : el("span", { class: "muted" }, "the model card is no longer on disk"));
    const seeds = model.seeds;
    main.append(
      el("h1", {}, `Model ${id} of `, el("a", { href: studyUrl(name) }, name)),
      el("p", { class: "muted" }, `${model.engine}/${model.algorithm} · configuration of trial #${model.trial} · retrained ${when(model.created_at)}`),
      downloads,
      el("h2", {}, "Test metrics (held-out test split, never seen by the search)"),
      el("table", { id: "test-metrics" }, el("thead", {}, el("tr", {}, el("th", {}, "metric"), el("th", { class: "num" }, "value"),
        ...(seeds ? [el("th", { class: "num" }, `mean over ${seeds.seeds.length} seeds`), el("th", { class: "num" }, "std")] : []))),
      el("tbody", {}, metrics.map(([metric, value]) => el("tr", {}, el("td", {}, metric), el("td", { class: "num" }, fmt(value)),
        ...(seeds ? [el("td", { class: "num" }, fmt(seeds.test_mean[metric])), el("td", { class: "num" }, fmt(seeds.test_std[metric]))] : []))))),
      el("h2", {}, "Training"),
      el("table", {}, el("tbody", {},
        el("tr", {}, el("th", {}, "epochs run"), el("td", {}, model.epochs_run)),
        el("tr", {}, el("th", {}, "best epoch"), el("td", {}, fmt(model.best_epoch))),
        el("tr", {}, el("th", {}, "stopped because"), el("td", {}, model.stop_reason || "–")),
        el("tr", {}, el("th", {}, "callbacks"), el("td", { class: "params" }, paramText(model.callbacks))),
        el("tr", {}, el("th", {}, "sha256 of model.keras"), el("td", { class: "params" }, model.sha256)),
        el("tr", {}, el("th", {}, "file"), el("td", { class: "params" }, model.path)))),
      el("h2", {}, "Model card"),
      card.config ? el("p", {}, "configuration: ", el("span", { class: "params" }, paramText(card.config))) : null,
      el("pre", { id: "card" }, model.card ? JSON.stringify(model.card, null, 2) : "the card (model.json) is not readable"),
    );
  }).catch((error) => showMessage(message, error.message));
})();
