// The dropq dashboard: polls /api/state, renders it, and posts the actions; searches the ledger on demand only (never
// on the refresh: a search's reads are the operator's, the refresh costs the same at any traffic). No framework, no
// network beyond this server.
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
        el(
          "td",
          {},
          f.key,
          // Versions of the key uploaded before this one: replaced, not a second file.
          ...(f.superseded || []).map((old) =>
            el("div", { class: "older-version" }, `superseded: ETag ${old.etag}, ${old.state} at ${(old.updated_at || "").replace("T", " ").slice(0, 19)}`),
          ),
        ),
        el("td", { class: "outputs" }, outputLinks(f.outputs)),
        el("td", { class: "reason" }, f.reason || ""),
        el("td", {}, f.state === "failed" ? el("button", { class: "retry", onclick: () => act("/api/files/retry", { key: f.key }, (a) => `${a.key} queued again (task ${a.task_id})`) }, "Retry") : null),
      ),
    ),
  );
}

async function refresh() {
  try {
    const state = await getJson("/api/state", {});
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

// Find files: a search (key prefix, state, pipeline, since) a page at a time, each page's token kept for Previous.
const search = { query: null, current: null, previous: [], shown: [] };

function when(iso) {
  return (iso || "").replace("T", " ").replace("Z", "").slice(0, 23);
}

function took(ms) {
  if (ms === null || ms === undefined) return "";
  return ms < 1000 ? `${ms} ms` : ms < 60000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

// The page's fragment with `file` set (or removed), the token kept.
function fileHash(key) {
  const params = new URLSearchParams();
  if (token) params.set("token", token);
  if (key) params.set("file", key);
  return `#${params}`;
}

async function getJson(path, params) {
  const response = await fetch(`${path}?${new URLSearchParams(params)}`, { headers });
  const answer = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  if (!response.ok) throw new Error(`${response.status} ${answer.error || ""}`.trim());
  return answer;
}

async function loadFindOptions() {
  try {
    const options = await getJson("/api/find-options", {});
    document.getElementById("find-state").append(...options.states.map((s) => el("option", { value: s }, s)));
    document.getElementById("find-pipeline").append(...options.pipelines.map((p) => el("option", { value: p }, p)));
    document.getElementById("find-since").append(
      ...options.since.map((s) => el("option", { value: s, selected: s === options.default_since ? "" : null }, `since ${s} ago`)),
    );
    document.getElementById("find").dataset.ready = "true";
  } catch (error) {
    say(`cannot read the search's filters: ${error.message}`);
  }
}

function startSearch() {
  const value = (id) => document.getElementById(id).value || null;
  search.query = { prefix: document.getElementById("find-prefix").value || null, state: value("find-state"), pipeline: value("find-pipeline"), since: value("find-since") };
  search.current = null;
  search.previous = [];
  loadPage();
}

async function loadPage() {
  const find = document.getElementById("find");
  delete find.dataset.loaded;
  const params = { limit: "50" };
  for (const [name, value] of Object.entries(search.query)) if (value) params[name] = value;
  if (search.current) params.page = search.current;
  let answer;
  try {
    answer = await getJson("/api/files", params);
  } catch (error) {
    document.getElementById("find-summary").textContent = `refused: ${error.message}`;
    find.dataset.loaded = "error";
    return;
  }
  // The later pages' period is the first's moment, not one that moves with the clock.
  search.query.since = answer.since;
  search.next = answer.next_page;
  search.shown = answer.files;
  renderFound(answer);
  find.dataset.loaded = "true";
}

function renderFound(answer) {
  const table = document.getElementById("found");
  table.hidden = false;
  table.querySelector("tbody").replaceChildren(
    ...answer.files.map((f) =>
      el(
        "tr",
        { "data-key": f.key, "data-etag": f.etag },
        el("td", { class: "key" }, el("a", { href: fileHash(f.key) }, f.key)),
        el("td", { class: `state state-${f.state}` }, f.state || ""),
        el("td", { class: "pipeline" }, f.pipeline || ""),
        el("td", { class: "num version" }, f.version === null || f.version === undefined ? "" : String(f.version)),
        el("td", { class: "updated" }, when(f.updated_at)),
        el("td", { class: "reason" }, f.reason || ""),
      ),
    ),
  );
  const number = search.previous.length + 1;
  const what = `${answer.state || ""} file${answer.files.length === 1 ? "" : "s"}`.trim();
  let text = `page ${number}: ${answer.files.length} ${what} since ${when(answer.since)} UTC`;
  if (answer.prefix) text += ` below ${answer.prefix}`;
  if (answer.pipeline) text += ` in ${answer.pipeline}`;
  if (answer.next_page && answer.files.length < 50) text += ` (read back to ${when(answer.reached)}; more may match)`;
  if (!answer.next_page) text += "; no more";
  document.getElementById("find-summary").textContent = text;
  document.getElementById("find-previous").disabled = search.previous.length === 0;
  document.getElementById("find-next").disabled = !answer.next_page;
  const failures = shownFailures();
  const retry = document.getElementById("retry-shown");
  retry.hidden = failures.length === 0;
  retry.textContent = `Retry all shown failures (${failures.length})`;
}

// The keys of the failures shown, once each (a listing has a row per version), when the search is of failures.
function shownFailures() {
  if (search.query.state !== "failed") return [];
  return [...new Set(search.shown.filter((f) => f.state === "failed").map((f) => f.key))];
}

async function retryShown() {
  const keys = shownFailures();
  if (!keys.length) return;
  if (!confirm(`Retry the ${keys.length} failed file(s) shown on this page? Each is queued again if it is still failed.`)) return;
  say("…");
  const { state, since, prefix, pipeline } = search.query;
  const response = await fetch("/api/retry-many", {
    method: "POST",
    headers: { ...headers, "Content-Type": "application/json" },
    body: JSON.stringify({ state, since, prefix, pipeline, keys }),
  });
  const answer = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) {
    say(`refused: ${answer.error || response.status}`);
    return;
  }
  const skipped = Object.keys(answer.skipped).length;
  say(`${answer.retried.length} of ${keys.length} shown failure(s) queued again` + (skipped ? `; ${skipped} skipped (no longer failed)` : ""));
  await loadPage();
  refresh();
}

function webhookText(w) {
  if (!w) return "none";
  let text = `${w.name || "-"}: ${w.state || "?"}`;
  if (w.status) text += ` (${w.status})`;
  if (w.attempts) text += ` after ${w.attempts} attempt(s)`;
  if (w.at) text += ` at ${when(w.at)}`;
  if (w.reason) text += `: ${w.reason}`;
  return text;
}

// An attempt before the last: when it started and ended, where, and how it ended.
function earlierAttempt(a) {
  const end = a.finished_at ? `ended ${when(a.finished_at)}` : "never ended";
  const ran = a.duration_ms !== null ? ` after ${took(a.duration_ms)}` : "";
  return el("li", { class: `attempt earlier outcome-${a.outcome}` }, `attempt ${a.attempt} started ${when(a.started_at)} on ${a.worker || "?"}, ${end}${ran}: ${a.outcome}` + (a.reason ? ` (${a.reason})` : ""));
}

// One version's timeline: its entry (or its upload, not in the ledger) -> each attempt (start, end, worker) -> its outcome.
function timeline(v) {
  const steps = [];
  if (v.state === "waiting" || v.state === "unrecorded") {
    // S3 has it, the ledger not: its claim creates its entry; uploaded longer ago than its queue keeps a message, its
    // message is gone or its entry expired.
    steps.push(el("li", { class: "queued" }, `uploaded ${when(v.uploaded_at)}, routed to ${v.pipeline} on ${v.queue}`));
    const said = v.state === "waiting" ? "waiting in its queue for a worker" : "not in the ledger: its message is gone or its entry expired (`dropq backfill` sends it)";
    steps.push(el("li", { class: "outcome state-queued" }, said));
    return el("ol", { class: "timeline" }, ...steps);
  }
  const retried = v.retries ? ` (retried ${v.retries} time(s))` : "";
  steps.push(el("li", { class: "queued" }, `in the ledger since ${when(v.queued_at)} (its first claim, or its last retry) on ${v.queue || "?"}${retried}`));
  for (const a of v.earlier_attempts || []) steps.push(earlierAttempt(a));
  const attempt = v.last_attempt;
  if (attempt) {
    steps.push(el("li", { class: "attempt" }, `attempt ${v.attempts || 1} started ${when(attempt.started_at)} on ${attempt.worker || "?"}`));
  }
  const ended = (attempt && attempt.finished_at) || v.updated_at;
  if (v.state === "succeeded") steps.push(el("li", { class: "outcome state-succeeded" }, `succeeded ${when(ended)}` + (attempt && attempt.duration_ms !== null ? ` in ${took(attempt.duration_ms)}` : "")));
  else if (v.state === "failed") steps.push(el("li", { class: "outcome state-failed" }, `failed ${when(v.failed_at || ended)}: `, el("span", { class: "reason" }, v.reason || "no reason recorded")));
  else if (v.state === "running") steps.push(el("li", { class: "outcome state-running" }, "running now"));
  else steps.push(el("li", { class: "outcome state-queued" }, "waiting in its queue"));
  steps.push(el("li", { class: "outputs" }, "outputs: ", v.outputs.length ? outputLinks(v.outputs) : "none"));
  steps.push(el("li", { class: "webhook" }, `webhook: ${webhookText(v.webhook)}`));
  return el("ol", { class: "timeline" }, ...steps);
}

async function showFile() {
  const key = new URLSearchParams(location.hash.slice(1)).get("file");
  const panel = document.getElementById("file");
  delete panel.dataset.loaded;
  if (!key) {
    panel.hidden = true;
    return;
  }
  panel.hidden = false;
  document.getElementById("file-key").textContent = key;
  document.getElementById("file-close").href = fileHash(null);
  const versions = document.getElementById("file-versions");
  try {
    const answer = await getJson("/api/file", { key });
    versions.replaceChildren(
      ...answer.versions.map((v) =>
        el(
          "div",
          { class: `version${v.superseded ? " superseded" : ""}`, "data-etag": v.etag },
          el(
            "h3",
            {},
            `version ${v.etag} `,
            el("span", { class: "mark" }, v.superseded ? "superseded" : "newest"),
            ` ${v.size === null || v.size === undefined ? "?" : v.size} bytes, ${v.pipeline || "?"} (pipeline version ${v.version ?? "?"}): `,
            el("span", { class: `state state-${v.state}` }, v.state || "?"),
          ),
          timeline(v),
        ),
      ),
    );
  } catch (error) {
    versions.replaceChildren(el("p", { class: "reason" }, error.message));
  }
  panel.dataset.loaded = "true";
  panel.scrollIntoView();
}

document.getElementById("find-search").onclick = startSearch;
document.getElementById("find-prefix").onkeydown = (event) => {
  if (event.key === "Enter") startSearch();
};
document.getElementById("find-next").onclick = () => {
  search.previous.push(search.current);
  search.current = search.next;
  loadPage();
};
document.getElementById("find-previous").onclick = () => {
  search.current = search.previous.pop();
  loadPage();
};
document.getElementById("retry-shown").onclick = retryShown;
window.addEventListener("hashchange", showFile);

loadFindOptions();
showFile();
refresh();
setInterval(refresh, REFRESH_MS);
