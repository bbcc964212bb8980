// Small SVG charts for the dashboard: lines, steps and dots on linear or log axes, or dots over
// categories. Hand-written rather than a charting library: the pages need four kinds of plot, and
// every asset must ship in the package.
"use strict";

const HPChart = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2f6fdb", "#d9480f", "#2b8a3e", "#ae3ec9", "#e67700", "#0c8599", "#c2255c", "#5c940d",
    "#364fc7", "#862e9c"];

  function svg(tag, attrs = {}, text) {
    const node = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // "Nice" tick values (1, 2, 5 x 10^k) covering [low, high].
  function ticks(low, high, count = 5, integer = false) {
    if (!(high > low)) { const pad = Math.abs(low) * 0.1 || 1; low -= pad; high += pad; }
    const raw = (high - low) / count;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    let step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
    if (integer) step = Math.max(1, Math.round(step));
    const out = [];
    for (let v = Math.ceil(low / step) * step; v <= high + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
    return { values: out, low: Math.min(low, out[0]), high: Math.max(high, out[out.length - 1]) };
  }

  function logTicks(low, high) {
    const out = [];
    for (let k = Math.floor(Math.log10(low)); k <= Math.ceil(Math.log10(high)); k++) out.push(Math.pow(10, k));
    return { values: out, low: out[0], high: out[out.length - 1] };
  }

  function label(value) {
    if (Math.abs(value) >= 1e4 || (Math.abs(value) < 1e-3 && value !== 0)) return value.toExponential(0);
    return String(Number(value.toPrecision(4)));
  }

  // spec: {title, xLabel, yLabel, series: [{name, points: [[x, y]], mode: "line"|"step"|"dots", color}],
  //        xCategories: [names] (x values are indices), xLog, xInteger (whole ticks: trials, epochs),
  //        xZero (the axis starts at 0: budgets), width, height, empty (text when there is no data)}
  function draw(container, spec) {
    container.replaceChildren();
    const width = spec.width || 560, height = spec.height || 300;
    const margin = { left: 58, right: 14, top: spec.title ? 26 : 10, bottom: 40 };
    const plotW = width - margin.left - margin.right, plotH = height - margin.top - margin.bottom;
    const root = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img" });
    if (spec.title) root.append(svg("text", { x: margin.left, y: 16, class: "title" }, spec.title));
    const series = (spec.series || []).map((s, i) => ({ ...s, color: s.color || PALETTE[i % PALETTE.length],
      points: (s.points || []).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!spec.xLog || x > 0)) }));
    const all = series.flatMap((s) => s.points);
    container.append(root);
    if (!all.length) {
      root.append(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, spec.empty || "no data yet"));
      return root;
    }
    const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
    const cats = spec.xCategories;
    const xt = cats ? { values: cats.map((_, i) => i), low: -0.5, high: cats.length - 0.5 }
      : spec.xLog ? logTicks(Math.min(...xs), Math.max(...xs))
        : ticks(spec.xZero ? Math.min(0, ...xs) : Math.min(...xs), Math.max(...xs), 5, spec.xInteger);
    const yt = ticks(Math.min(...ys), Math.max(...ys));
    if (series.some((s) => s.mode === "dots" || !s.mode)) {
      // Dots at the ends of the range would be cut in half by the frame.
      if (!cats && !spec.xLog) {
        const pad = (xt.high - xt.low) * 0.03;
        xt.low -= pad; xt.high += pad;
      }
      const yPad = (yt.high - yt.low) * 0.04;
      yt.low -= yPad; yt.high += yPad;
    }
    const fx = spec.xLog && !cats
      ? (x) => margin.left + (Math.log10(x) - Math.log10(xt.low)) / (Math.log10(xt.high) - Math.log10(xt.low) || 1) * plotW
      : (x) => margin.left + (x - xt.low) / (xt.high - xt.low || 1) * plotW;
    const fy = (y) => margin.top + plotH - (y - yt.low) / (yt.high - yt.low || 1) * plotH;

    const axes = svg("g", { class: "axis" });
    for (const v of yt.values) {
      axes.append(svg("line", { x1: margin.left, x2: margin.left + plotW, y1: fy(v), y2: fy(v), class: "gridline" }));
      axes.append(svg("text", { x: margin.left - 6, y: fy(v) + 4, "text-anchor": "end" }, label(v)));
    }
    xt.values.forEach((v, i) => {
      const x = fx(v);
      axes.append(svg("line", { x1: x, x2: x, y1: margin.top + plotH, y2: margin.top + plotH + 4 }));
      axes.append(svg("text", { x, y: margin.top + plotH + 16, "text-anchor": "middle" },
        cats ? String(cats[i]).slice(0, 14) : label(v)));
    });
    axes.append(svg("path", { d: `M${margin.left},${margin.top}V${margin.top + plotH}H${margin.left + plotW}`, fill: "none" }));
    if (spec.xLabel) axes.append(svg("text", { x: margin.left + plotW / 2, y: height - 6, "text-anchor": "middle" }, spec.xLabel));
    if (spec.yLabel) {
      axes.append(svg("text", { x: 12, y: margin.top + plotH / 2, "text-anchor": "middle",
        transform: `rotate(-90 12 ${margin.top + plotH / 2})` }, spec.yLabel));
    }
    root.append(axes);

    for (const s of series) {
      const g = svg("g", { "data-series": s.name || "" });
      if (s.mode === "dots" || !s.mode) {
        for (const [x, y] of s.points) {
          const jitter = cats ? (hash(x, y) - 0.5) * 0.5 : 0;
          const dot = svg("circle", { cx: fx(x + jitter), cy: fy(y), r: s.radius || 3.2, fill: s.color, "fill-opacity": 0.7 });
          if (s.titles) dot.append(svg("title", {}, s.titles(x, y)));
          g.append(dot);
        }
      } else {
        let d = "";
        s.points.forEach(([x, y], i) => {
          if (i === 0) d += `M${fx(x)},${fy(y)}`;
          else if (s.mode === "step") d += `H${fx(x)}V${fy(y)}`;
          else d += `L${fx(x)},${fy(y)}`;
        });
        if (s.mode === "step" && s.extendTo !== undefined && s.points.length) d += `H${fx(s.extendTo)}`;
        g.append(svg("path", { d, fill: "none", stroke: s.color, "stroke-width": s.width || 2,
          "stroke-dasharray": s.dash || "none" }));
      }
      root.append(g);
    }
    if (spec.legend !== false && series.some((s) => s.name)) {
      const legend = document.createElement("div");
      legend.className = "legend";
      for (const s of series) {
        if (!s.name) continue;
        const item = document.createElement("span");
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = s.color;
        item.append(swatch, document.createTextNode(s.name));
        legend.append(item);
      }
      container.append(legend);
    }
    return root;
  }

  // A stable pseudo-random jitter per point, so dots do not dance on every refresh.
  function hash(x, y) {
    const s = Math.sin(x * 12.9898 + y * 78.233) * 43758.5453;
    return s - Math.floor(s);
  }

  return { draw, PALETTE };
})();
