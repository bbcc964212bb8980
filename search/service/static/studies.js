// Studies page: every study of every engine with live counts and best values; compare and launch.
"use strict";

(() => {
  const { api, el, fmt, when, studyUrl, showMessage, runBadge } = HP;
  const main = document.getElementById("main");
  const message = document.getElementById("message");
  const selected = new Set();

  const count = el("p", { class: "muted", id: "study-count" });
  const compareButton = el("button", { id: "compare-selected", disabled: true, onclick: () => {
    const query = [...selected].map((name) => `study=${encodeURIComponent(name)}`).join("&");
    window.location.href = `/compare?${query}`;
  } }, "Compare selected");
  const body = el("tbody");
  const table = el("table", { id: "studies" },
    el("thead", {}, el("tr", {},
      el("th", {}, ""), el("th", {}, "study"), el("th", {}, "engine"), el("th", {}, "algorithm"),
      el("th", {}, "objective"), el("th", { class: "num" }, "trials"), el("th", { class: "num" }, "complete"),
      el("th", { class: "num" }, "pruned"), el("th", { class: "num" }, "failed"),
      el("th", { class: "num" }, "running"), el("th", { class: "num" }, "best"), el("th", {}, "status"),
      el("th", {}, "updated"))),
    body);
  main.append(el("h1", {}, "Studies"), count, el("div", { class: "toolbar" }, compareButton,
    el("span", { class: "muted" }, "tick two or more studies to put them side by side")), table);

  function render(studies) {
    count.textContent = `${studies.length} ${studies.length === 1 ? "study" : "studies"}` +
      `, ${studies.filter((s) => s.run && s.run.running).length} running`;
    body.replaceChildren();
    if (!studies.length) {
      body.append(el("tr", {}, el("td", { colspan: 13, class: "empty" },
        "No studies yet: launch one below, or with `hpsearch run`.")));
    }
    for (const s of studies) {
      const box = el("input", { type: "checkbox", checked: selected.has(s.name), "aria-label": `select ${s.name}`,
        onchange: (e) => { e.target.checked ? selected.add(s.name) : selected.delete(s.name); update(); } });
      body.append(el("tr", { "data-study": s.name },
        el("td", {}, box),
        el("td", {}, el("a", { href: studyUrl(s.name) }, s.name)),
        el("td", { class: "engine" }, s.engine), el("td", {}, s.algorithm),
        el("td", {}, `${s.objective} (${s.direction === "minimize" ? "min" : "max"})`),
        el("td", { class: "num", "data-field": "trials" }, s.trials),
        el("td", { class: "num" }, s.states.COMPLETE), el("td", { class: "num" }, s.states.PRUNED),
        el("td", { class: "num" }, s.states.FAILED), el("td", { class: "num" }, s.states.RUNNING),
        el("td", { class: "num", "data-field": "best" }, fmt(s.best_value)),
        el("td", {}, runBadge(s.run) || (s.run && s.run.last_launch && s.run.last_launch.error
          ? el("span", { class: "badge FAILED", title: s.run.last_launch.error }, "launch failed") : "")),
        el("td", { class: "muted" }, when(s.updated_at))));
    }
    update();
  }

  function update() {
    compareButton.disabled = selected.size < 2;
  }

  HP.poll(async () => {
    const studies = await api("/api/studies");
    showMessage(message, "");
    render(studies);
    return studies.some((s) => s.run && s.run.running) ? 2000 : 5000;
  }, (x) => x, (error) => showMessage(message, error.message));

  // -- launch form ----------------------------------------------------------------------------------
  const form = el("form", { class: "launch", id: "launch" });
  const field = (name, label, input) => el("label", {}, label, input);
  const presetSelect = el("select", { name: "preset" }, el("option", { value: "" }, "(space text below)"));
  const dataSelect = el("select", { name: "data" });
  const engineSelect = el("select", { name: "engine" });
  const launchMessage = el("div", { class: "message" });
  form.append(
    field("study", "study name (optional)", el("input", { name: "study", placeholder: "DATA-ENGINE-ALGORITHM-TIME" })),
    field("preset", "space preset", presetSelect),
    field("data", "data", dataSelect),
    field("engine", "engine", engineSelect),
    field("algorithm", "algorithm (optional)", el("input", { name: "algorithm", placeholder: "engine's default" })),
    field("trials", "trials (optional)", el("input", { name: "trials", type: "number", min: 1 })),
    field("timeout", "timeout s (optional)", el("input", { name: "timeout", type: "number", min: 1 })),
    el("textarea", { name: "space", placeholder: "or paste a space (YAML) here, and pick '(space text below)'" }),
    el("div", {}, el("button", { type: "submit" }, "Launch")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const request = {};
    for (const key of ["study", "preset", "data", "engine", "algorithm", "space"]) {
      const value = String(data.get(key) || "").trim();
      if (value) request[key] = value;
    }
    if (request.preset) delete request.space;
    for (const key of ["trials", "timeout"]) if (data.get(key)) request[key] = Number(data.get(key));
    showMessage(launchMessage, "launching…", "info");
    try {
      const launched = await api("/api/studies", { method: "POST", body: request });
      window.location.href = studyUrl(launched.study);
    } catch (error) {
      showMessage(launchMessage, error.message);
    }
  });
  main.append(el("details", { id: "launch-panel" }, el("summary", {}, "Launch a study"),
    el("div", { class: "card" }, launchMessage, form)));
  api("/api/options").then((options) => {
    for (const name of options.presets) presetSelect.append(el("option", { value: name, selected: name === "default" }, name));
    for (const name of [...options.datasets, ...options.data_files]) dataSelect.append(el("option", { value: name }, name));
    for (const name of options.engines) engineSelect.append(el("option", { value: name }, name));
  }).catch((error) => showMessage(launchMessage, error.message));
})();
