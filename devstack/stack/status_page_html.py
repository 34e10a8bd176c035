"""The HTML of the status page (devstack.stack.status_page): one self-contained document,
inline CSS and JavaScript drawing SVG charts from ``status.json``; nothing from a CDN."""

HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>MasterMobile Stream — status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
  h1 { font-size: 1.3em; margin: 0 0 .3em; }
  .meta { color: #666; margin-bottom: 1em; }
  .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 1em; }
  .card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .8em 1em; }
  .card h2 { font-size: 1em; margin: 0 0 .4em; }
  svg { width: 100%; height: 200px; display: block; }
  .legend span { display: inline-block; margin-right: 1em; white-space: nowrap; }
  .legend i { display: inline-block; width: .8em; height: .8em; margin-right: .3em; border-radius: 2px; }
  table { border-collapse: collapse; width: 100%; }
  td, th { text-align: left; padding: .15em .5em; border-bottom: 1px solid #eee; }
  td.n { text-align: right; font-variant-numeric: tabular-nums; }
  .down { color: #b00; } .up { color: #070; } #err { color: #b00; }
  .big { font-size: 1.6em; font-weight: 600; }
</style>
</head>
<body>
<h1>MasterMobile Stream — status</h1>
<div class="meta">Charts refresh every few seconds from <a href="status.json">status.json</a>.
  <span id="updated"></span> <span id="err"></span></div>
<div class="grid">
  <div class="card"><h2>Completed at the target, per flow</h2><table id="flows"><tbody></tbody></table></div>
  <div class="card"><h2>Throughput (events/s)</h2><svg id="throughput" viewBox="0 0 600 200" preserveAspectRatio="none"></svg><div class="legend" id="throughput-legend"></div></div>
  <div class="card"><h2>Consumer lag per group (records)</h2><svg id="lag" viewBox="0 0 600 200" preserveAspectRatio="none"></svg><div class="legend" id="lag-legend"></div></div>
  <div class="card"><h2>Dead-lettered records (total <span id="dlq-total" class="big">0</span>)</h2><svg id="dlq" viewBox="0 0 600 200" preserveAspectRatio="none"></svg><table id="dlq-table"><thead><tr><th>stage</th><th>reason</th><th>records</th></tr></thead><tbody></tbody></table></div>
  <div class="card"><h2>Processes</h2><table id="sources"><tbody></tbody></table><h2 style="margin-top:.8em">Totals since start</h2><table id="totals"><tbody></tbody></table></div>
</div>
<script>
"use strict";
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const NS = "http://www.w3.org/2000/svg";

function el(tag, attrs, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmt(v) {
  if (v === null || v === undefined) return "–";
  if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (Math.abs(v) >= 1e3) return (v / 1e3).toFixed(1) + "k";
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

function chart(id, t, series) {
  const svg = document.getElementById(id);
  const legend = document.getElementById(id + "-legend");
  svg.replaceChildren();
  const names = Object.keys(series);
  let max = 0;
  for (const n of names) for (const v of series[n]) if (v !== null && v > max) max = v;
  max = max > 0 ? max * 1.1 : 1;
  const W = 600, H = 200, left = 40, bottom = 16;
  const t0 = t.length ? t[0] : 0, t1 = t.length ? t[t.length - 1] : 1, span = Math.max(t1 - t0, 1);
  const x = (ts) => left + (W - left - 4) * (ts - t0) / span;
  const y = (v) => (H - bottom) - (H - bottom - 6) * v / max;
  for (const f of [0, 0.5, 1]) {
    svg.appendChild(el("line", {x1: left, x2: W, y1: y(max * f / 1.1), y2: y(max * f / 1.1), stroke: "#eee"}));
    svg.appendChild(el("text", {x: 2, y: y(max * f / 1.1) + 4, "font-size": 11, fill: "#888"}, fmt(max * f / 1.1)));
  }
  svg.appendChild(el("text", {x: left, y: H - 2, "font-size": 11, fill: "#888"}, t.length ? Math.round(span) + " s" : "waiting for data"));
  if (legend) legend.replaceChildren();
  names.forEach((n, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = [];
    series[n].forEach((v, j) => { if (v !== null) pts.push(x(t[j]).toFixed(1) + "," + y(v).toFixed(1)); });
    if (pts.length === 1) pts.push(pts[0]);
    svg.appendChild(el("polyline", {points: pts.join(" "), fill: "none", stroke: color, "stroke-width": 2,
                                    "vector-effect": "non-scaling-stroke"}));
    if (legend) {
      const last = series[n][series[n].length - 1];
      const item = document.createElement("span");
      item.innerHTML = '<i style="background:' + color + '"></i>';
      item.appendChild(document.createTextNode(n + " " + fmt(last)));
      legend.appendChild(item);
    }
  });
}

function rows(id, entries) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren();
  for (const cells of entries) {
    const tr = document.createElement("tr");
    for (const [text, cls] of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

function render(d) {
  chart("throughput", d.throughput.t, d.throughput.series);
  chart("lag", d.lag.t, d.lag.series);
  chart("dlq", d.dlq.t, d.dlq.series);
  document.getElementById("dlq-total").textContent = fmt(d.dlq.total);
  rows("dlq-table", d.dlq.by_reason.map(r => [[r.stage], [r.reason], [fmt(r.count), "n"]]));
  rows("sources", Object.entries(d.sources).map(([url, up]) => [[url], [up ? "up" : "down", up ? "up" : "down"]]));
  rows("flows", Object.entries(d.flows || {}).map(([k, v]) => [[k], [fmt(v), "n"]]));
  rows("totals", Object.entries(d.totals).map(([k, v]) => [[k], [fmt(v), "n"]]));
  if (d.updated_at) document.getElementById("updated").textContent = "Updated " + new Date(d.updated_at * 1000).toLocaleTimeString() + ".";
}

let interval = 2;
async function tick() {
  try {
    const response = await fetch("status.json", {cache: "no-store"});
    const d = await response.json();
    interval = d.interval_s || interval;
    render(d);
    document.getElementById("err").textContent = "";
  } catch (e) {
    document.getElementById("err").textContent = "status.json unreachable (" + e + ")";
  }
  setTimeout(tick, Math.max(1, interval) * 1000);
}
tick();
</script>
</body>
</html>
"""
