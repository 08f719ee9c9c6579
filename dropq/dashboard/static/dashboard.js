// The dropq dashboard: polls /api/state, renders it, and posts the actions. No framework, no network beyond this server.
"use strict";

const REFRESH_MS = 2000;
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const headers = token ? { "X-Dropq-Token": token } : {};

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "onclick") node.onclick = value;
    else if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function svg(tag, attributes = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

function say(text) {
  document.getElementById("message").textContent = text;
}

const HOUR_MS = 3600 * 1000;

// A line chart over the hour before `end` (ms) of `series` (lists of [time in ms, value], one colour each),
// placed by time and scaled to their common maximum.
function lines(series, colours, width, height, end, className) {
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", class: className });
  const top = Math.max(1, ...series.flat().map(([, v]) => v));
  series.forEach((values, i) => {
    if (values.length < 2) return;
    const x = (t) => (Math.max(0, t - (end - HOUR_MS)) / HOUR_MS) * width;
    const points = values.map(([t, v]) => `${x(t).toFixed(1)},${(height - 2 - (v / top) * (height - 4)).toFixed(1)}`);
    chart.append(svg("polyline", { points: points.join(" "), fill: "none", stroke: colours[i], "stroke-width": 1.5 }));
  });
  return chart;
}

async function act(path, body, done) {
  say("…");
  const response = await fetch(path, { method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const answer = await response.json().catch(() => ({ error: response.statusText }));
  say(response.ok ? done(answer) : `refused: ${answer.error || response.status}`);
  refresh();
}

function renderQueues(state) {
  const body = document.querySelector("#queues tbody");
  body.replaceChildren(
    ...state.queues.map((q) => {
      const depth = state.depths.filter((d) => d.queues[q.name]).map((d) => [Date.parse(d.at), d.queues[q.name]]);
      const waiting = depth.map(([t, d]) => [t, d.visible + d.delayed]);
      const inFlight = depth.map(([t, d]) => [t, d.in_flight]);
      const dead = depth.map(([t, d]) => [t, d.dead_lettered]);
      return el(
        "tr",
        { "data-queue": q.name },
        el("td", {}, q.physical_name),
        el("td", { class: "num visible" }, String(q.visible)),
        el("td", { class: "num in-flight" }, String(q.in_flight)),
        el("td", { class: "num delayed" }, String(q.delayed)),
        el("td", { class: "num dead" }, String(q.dead_lettered)),
        el("td", { title: "waiting (blue), in flight (green), dead-lettered (red)" }, lines([waiting, inFlight, dead], ["#1565c0", "#2e9d62", "#d84a4a"], 180, 34, Date.parse(state.at), "spark")),
        el(
          "td",
          {},
          el("button", {
            class: "redrive",
            disabled: q.dead_lettered ? null : "",
            onclick: () => act(`/api/queues/${q.name}/redrive`, {}, (a) => `${a.moved} message(s) moved back to ${q.physical_name}`),
          }, "Redrive"),
          el("button", {
            class: "purge danger",
            disabled: q.dead_lettered ? null : "",
            onclick: () => {
              if (!confirm(`Delete all ${q.dead_lettered} dead letter(s) of ${q.physical_name}? They cannot be recovered.`)) return;
              act(`/api/queues/${q.name}/purge`, { confirm: q.name }, (a) => `${a.deleted} dead letter(s) of ${q.physical_name} deleted`);
            },
          }, "Purge"),
        ),
      );
    }),
  );
  const failures = document.getElementById("producer-failures");
  failures.hidden = !state.producer_failures;
  failures.textContent = `Producer events that failed every retry: ${state.producer_failures}`;
}

function renderPools(state) {
  document.querySelector("#pools tbody").replaceChildren(
    ...state.pools.map((p) =>
      el(
        "tr",
        { "data-pool": p.name },
        el("td", {}, p.name),
        el("td", { class: "num workers" }, String(p.workers)),
        el("td", { class: "num desired" }, p.desired === null ? "?" : String(p.desired)),
        el("td", { class: "num" }, `${p.min}..${p.max}`),
        el("td", { class: "num active" }, `${p.active} / ${p.workers * p.concurrency}`),
        el("td", { class: "num rate" }, String(p.tasks_per_minute)),
        el("td", {}, p.queues.join(", ")),
      ),
    ),
  );
}

function renderThroughput(state) {
  const series = state.throughput;
  const width = 600, height = 120, barWidth = width / series.length;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none" });
  const top = Math.max(1, ...series.map((m) => m.succeeded + m.failed));
  series.forEach((m, i) => {
    const ok = (m.succeeded / top) * (height - 4), bad = (m.failed / top) * (height - 4);
    const title = svg("title");
    title.textContent = `${m.minute}: ${m.succeeded} succeeded, ${m.failed} failed`;
    const bar = svg("g");
    bar.append(title);
    bar.append(svg("rect", { x: i * barWidth, y: height - ok, width: barWidth * 0.8, height: ok, fill: "#2e9d62" }));
    bar.append(svg("rect", { x: i * barWidth, y: height - ok - bad, width: barWidth * 0.8, height: bad, fill: "#d84a4a" }));
    chart.append(bar);
  });
  // Each minute's failure rate, at the minute's middle (a bar's), over the hour the bars cover.
  const end = series.length ? Date.parse(`${series[series.length - 1].minute}:00Z`) + 60000 : Date.now();
  const rate = lines([series.map((m) => [Date.parse(`${m.minute}:30Z`), m.failure_rate])], ["#6b4fbb"], width, height, end, "");
  chart.append(...rate.childNodes);
  document.getElementById("throughput").replaceChildren(chart);
  document.getElementById("throughput-start").textContent = series.length ? `${series[0].minute.slice(11)} UTC` : "";
  document.getElementById("throughput-peak").textContent = `peak ${top} files/min`;
}

function outputLinks(outputs) {
  if (!outputs || !outputs.length) return "";
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  const list = el("span");
  outputs.forEach((key, i) => {
    if (i) list.append(", ");
    list.append(el("a", { href: `/outputs/${key.split("/").map(encodeURIComponent).join("/")}${query}`, target: "_blank" }, key.split("/").pop()));
  });
  return list;
}

function renderFiles(state) {
  document.querySelector("#files tbody").replaceChildren(
    ...state.files.map((f) =>
      el(
        "tr",
        { "data-key": f.key },
        el("td", { class: `state state-${f.state}` }, f.state),
        el("td", {}, f.pipeline || ""),
        el("td", { class: "num" }, f.duration_ms === null || f.duration_ms === undefined ? "" : `${f.duration_ms} ms`),
        el("td", {}, (f.updated_at || "").replace("T", " ").slice(0, 19)),
        el("td", {}, f.key),
        el("td", { class: "outputs" }, outputLinks(f.outputs)),
        el("td", { class: "reason" }, f.reason || ""),
        el("td", {}, f.state === "failed" ? el("button", { class: "retry", onclick: () => act("/api/files/retry", { key: f.key }, (a) => `${a.key} queued again (task ${a.task_id})`) }, "Retry") : null),
      ),
    ),
  );
}

async function refresh() {
  try {
    const response = await fetch("/api/state", { headers });
    if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
    const state = await response.json();
    document.getElementById("deployment").textContent = state.deployment;
    document.getElementById("updated").textContent = `updated ${state.at}`;
    const link = document.getElementById("console");
    link.hidden = !state.console_url;
    if (state.console_url) link.href = state.console_url;
    renderQueues(state);
    renderPools(state);
    renderThroughput(state);
    renderFiles(state);
    document.body.dataset.loaded = "true";
  } catch (error) {
    say(`cannot read the deployment: ${error.message}`);
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
