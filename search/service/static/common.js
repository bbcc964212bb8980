// Shared helpers of the dashboard's pages: API calls, DOM building, number formatting, polling.
// Data from the store is only ever put into the page as text (textContent), never parsed as HTML,
// so a study name or a parameter value cannot inject markup.
"use strict";

const HP = (() => {
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path, options = {}) {
    const init = { credentials: "same-origin", headers: { Accept: "application/json" } };
    if (options.method) init.method = options.method;
    if (options.body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    const response = await fetch(path, init);
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      throw new ApiError(response.status, (data && data.error) || `${response.status} ${response.statusText}`);
    }
    return data;
  }

  // el("td", {class: "num"}, "1.5") -> <td class="num">1.5</td>; children are text or nodes.
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function fmt(value, digits = 4) {
    if (value === null || value === undefined) return "–";
    if (typeof value === "number") {
      if (!Number.isFinite(value)) return String(value);
      if (Number.isInteger(value)) return String(value);
      return Number(value.toPrecision(digits)).toString();
    }
    return String(value);
  }

  function seconds(value) {
    if (value === null || value === undefined) return "–";
    if (value < 120) return `${value.toFixed(1)} s`;
    if (value < 7200) return `${(value / 60).toFixed(1)} min`;
    return `${(value / 3600).toFixed(1)} h`;
  }

  function when(iso) {
    if (!iso) return "–";
    const date = new Date(iso);
    return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
  }

  function studyUrl(name) { return `/studies/${encodeURIComponent(name)}`; }
  function apiStudy(name) { return `/api/studies/${encodeURIComponent(name)}`; }

  function showMessage(node, text, kind = "error") {
    node.textContent = text || "";
    node.className = `message ${kind}` + (text ? " shown" : "");
  }

  function badge(text, kind) { return el("span", { class: `badge ${kind || text}` }, text); }

  function runBadge(run) {
    if (!run) return null;
    if (run.running && run.stopping) return badge("stopping", "running");
    if (run.running) return badge(run.launched_here ? "running" : "running (other process)", "running");
    return null;
  }

  // Calls fn now and again every `every(result)` ms until the page goes away; errors are shown, not fatal.
  function poll(fn, every, onError) {
    let timer = null;
    async function tick() {
      let wait = 2000;
      try { wait = every(await fn()); } catch (error) { if (onError) onError(error); wait = 5000; }
      timer = setTimeout(tick, wait);
    }
    tick();
    return { now() { clearTimeout(timer); tick(); } };
  }

  function params(p) {
    return Object.entries(p || {}).map(([k, v]) => `${k}=${fmt(v)}`).join(", ");
  }

  return { api, ApiError, el, fmt, seconds, when, studyUrl, apiStudy, showMessage, badge, runBadge, poll, params };
})();

// Every page names the store it reads in its header (the server hides any password in it).
HP.api("/api/health").then((health) => {
  const where = document.getElementById("storage");
  if (where) where.textContent = health.storage;
}).catch(() => {});
