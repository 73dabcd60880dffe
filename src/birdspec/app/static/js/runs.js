// runs.js: the Runs page (#page-runs): the run folders, one row each (date, model, status, key metric), as links
// (#/runs?run=REF shows one: its curves, metrics, split, confusion matrix and other figures), and comparing the
// selected runs as a background job whose report opens in a new tab.
import { apiUrl, get, isAbort, post } from "./api.js";
import { CURVES_NOTE, drawCurves } from "./curves.js";
import { $, el, say } from "./dom.js";
import { pollJob } from "./jobs.js";
import { href } from "./route.js";

let root = null;
let life = null;         // AbortController of the current showing of the page
let pendingJob = null;   // id of the comparison job not yet seen to end
let shown = null;        // the run shown in detail

const q = (sel) => $(sel, root);
const msg = (text, kind) => say(q("#runs-msg"), text, kind);

export const keyHelp = [];

export const keys = {};

export function mount(section, params = {}) {
  root = section;
  life = new AbortController();
  const { signal } = life;
  q("#runs-refresh").addEventListener("click", refresh, { signal });
  q("#compare").addEventListener("click", compare, { signal });
  q("#compare").disabled = false;
  refresh();
  if (pendingJob) follow(pendingJob);
  update(params);
}

/** The URL changed while the page is shown. */
export function update(params) {
  if (params.run && params.run !== shown) show(params.run);
}

export function unmount() {
  life.abort();
}

const f3 = (v) => (typeof v === "number" ? (+v.toFixed(3)).toString() : "–");
const day = (iso) => (iso ? iso.replace("T", " ").slice(0, 16) : "–");

async function refresh() {
  try {
    const { runs } = await get("/runs", null, { signal: life.signal });
    const tbody = q("#runs-list"), checked = new Set([...tbody.querySelectorAll("input:checked")].map((c) => c.value));
    tbody.innerHTML = "";
    for (const r of runs) {
      const box = el("input", { type: "checkbox", value: r.ref, "aria-label": `select ${r.name} to compare` });
      box.checked = checked.has(r.ref);
      const metric = r.metric ? `${r.metric.name} ${f3(r.metric.value)}` : "–";
      tbody.append(el("tr", {}, el("td", {}, box), el("td", {}, el("a", { href: href("runs", { run: r.ref }), text: r.name })),
        el("td", { text: day(r.date) }), el("td", { text: r.model || "–" }),
        el("td", { text: r.status + (r.split === "time-blocks" ? " · time-block split" : "") }), el("td", { text: metric })));
    }
    if (!runs.length) tbody.append(el("tr", {}, el("td", { colspan: "6", class: "muted", text: "no run folders yet" })));
  } catch (err) { if (!isAbort(err)) msg(err.message); }
}

// What eval_val's "recording" level counts: a run trained from verified windows prepared each window as its own
// recording, so its figures are per window (GET /api/run's `level`).
const LEVEL_NOTE = "Trained from verified windows: each window was prepared as its own recording, so where the figures "
  + "below say “recording level” read window level (n = validation windows).";

function facts(run) {
  const t = el("table", { class: "facts" });
  const row = (k, v) => t.append(el("tr", {}, el("td", { text: k }), el("td", { text: v })));
  const head = (text) => t.append(el("tr", {}, el("th", { colspan: "2", text })));
  const e = run.entry || {}, unit = run.level === "window" ? "window" : "recording";
  row("date", day(e.date)); row("model", e.model || "–"); row("status", e.status || "–");
  const rec = (run.eval_val || {}).recording || {};
  if (Object.keys(rec).length) head(`birdspec evaluate, per validation ${unit}`);
  for (const k of ["accuracy", "balanced_accuracy", "macro_f1", "macro_precision", "macro_recall", "n"]) {
    if (k in rec) row(k === "n" ? `val ${unit}s (n)` : "val " + k.replace(/_/g, " "), f3(rec[k]));
  }
  const summary = Object.entries(run.summary || {}).filter(([k, v]) => typeof v !== "object" && k !== "model" && k !== "status");
  if (summary.length) head("training (summary.json): best_val_acc is the curves' val_acc at its best epoch");
  for (const [k, v] of summary) row(k, typeof v === "number" ? f3(v) : String(v));
  return t;
}

function splitBox(split) {
  const box = el("div", { class: split.mode === "time-blocks" ? "msg warn" : "msg ok" });
  box.append(el("strong", { text: split.mode === "time-blocks" ? "Validation by time blocks within recordings (weaker). " : "Validation by recording. " }),
    split.weaker ? split.weaker + ". " : "", ...(split.notes || []).map((n) => n + " "));
  const t = el("table", {}, el("tr", {}, ...["species", "recordings", "train", "val", "left out"].map((h) => el("th", { text: h }))));
  for (const [label, c] of Object.entries(split.per_class || {})) t.append(el("tr", {}, ...[label, c.recordings, c.train, c.val, c.gap].map((v) => el("td", { text: String(v) }))));
  box.append(t);
  return box;
}

async function show(ref) {
  shown = ref;
  try {
    const run = await get("/run", { ref }, { signal: life.signal });
    const d = q("#run-detail");
    d.innerHTML = "";
    d.append(el("h3", { text: ref }));
    if (run.split) d.append(splitBox(run.split));
    if (!run.figures.some((f) => f.endsWith("/curves.png"))) {  // the server lists curves.png only when there is nothing to draw
      const canvas = el("canvas", { width: 720, height: 240 });
      d.append(canvas, el("p", { class: "muted curves-note", text: CURVES_NOTE }));
      drawCurves(canvas, run.curves);
    }
    d.append(facts(run));
    if (run.val_check) d.append(el("p", { class: "muted val-check", text: `Training's val_acc against the evaluation: ${run.val_check.text}.` }));
    if (!run.eval_val) d.append(el("p", { class: "muted", text: `not evaluated yet: birdspec evaluate ${ref.replace(/^runs\//, "RUNS/")} writes its metrics and confusion matrix` }));
    else if (run.level === "window") d.append(el("p", { class: "muted level-note", text: LEVEL_NOTE }));
    for (const f of run.figures) d.append(el("img", { src: apiUrl("/file", { ref: f }), alt: f.split("/").pop() }));
  } catch (err) {
    if (isAbort(err)) { shown = null; return; }
    msg(err.message);
  }
}

async function compare() {
  const runs = [...q("#runs-list").querySelectorAll("input:checked")].map((c) => c.value);
  if (!runs.length) { msg("select runs to compare first"); return; }
  msg("comparing… (evaluates each run)", "ok");
  q("#compare").disabled = true;
  let job;
  try {
    job = await post("/compare", { runs });  // not cancelled: the job id must not be lost
  } catch (err) {
    msg(err.message);
    q("#compare").disabled = false;
    return;
  }
  pendingJob = job.id;
  if (!life.signal.aborted) follow(job.id);  // else the next showing of the page follows it
}

async function follow(id) {
  const { signal } = life;
  q("#compare").disabled = true;
  try {
    const job = await pollJob(id, { signal, onUpdate: (j) => msg(j.message || "comparing…", "ok") });
    pendingJob = null;
    if (job.status === "failed") throw new Error(job.message);
    const box = q("#runs-msg");
    box.innerHTML = "";
    box.append(el("a", { href: apiUrl("/file", { ref: job.result.report }), target: "_blank", text: "open the comparison report" }));
  } catch (err) {
    if (isAbort(err)) return;
    pendingJob = null;
    msg(err.message);
  }
  q("#compare").disabled = false;
}
