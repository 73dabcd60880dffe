// runs.js: the Runs page (#page-runs): the run folders as links (#/runs?run=REF shows one: its curves,
// summary, validation figures), and comparing the selected runs as a background job whose report opens
// in a new tab.
import { apiUrl, get, isAbort, post } from "./api.js";
import { drawCurves } from "./curves.js";
import { $, el, say } from "./dom.js";
import { pollJob } from "./jobs.js";
import { href } from "./route.js";

let root = null;
let life = null;         // AbortController of the current showing of the page
let pendingJob = null;   // id of the comparison job not yet seen to end
let shown = null;        // the run shown in detail

const q = (sel) => $(sel, root);
const msg = (text, kind) => say(q("#runs-msg"), text, kind);

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

async function refresh() {
  try {
    const { runs } = await get("/runs", null, { signal: life.signal });
    const ul = q("#runs-list"), checked = new Set([...ul.querySelectorAll("input:checked")].map((c) => c.value));
    ul.innerHTML = "";
    for (const r of runs) {
      const box = el("input", { type: "checkbox", value: r, "aria-label": `select ${r} to compare` });
      box.checked = checked.has(r);
      ul.append(el("li", {}, box, " ", el("a", { href: href("runs", { run: r }), text: r.replace(/^runs\//, "") })));
    }
    if (!runs.length) ul.append(el("li", { class: "muted", text: "no run folders yet" }));
  } catch (err) { if (!isAbort(err)) msg(err.message); }
}

async function show(ref) {
  shown = ref;
  try {
    const run = await get("/run", { ref }, { signal: life.signal });
    const d = q("#run-detail");
    d.innerHTML = "";
    d.append(el("h3", { text: ref }));
    const canvas = el("canvas", { width: 720, height: 240 });
    d.append(canvas);
    drawCurves(canvas, run.curves);
    const evalNumbers = Object.entries((run.eval || {}).recording || {}).filter(([, v]) => typeof v === "number").map(([k, v]) => ["val " + k, v]);
    const facts = { ...(run.summary || {}), ...Object.fromEntries(evalNumbers) };
    const t = el("table");
    for (const [k, v] of Object.entries(facts)) {
      if (typeof v !== "object") t.append(el("tr", {}, el("td", { text: k }), el("td", { text: typeof v === "number" ? (+v.toFixed(4)).toString() : String(v) })));
    }
    d.append(t);
    for (const f of run.figures) d.append(el("img", { src: apiUrl("/file", { ref: f }), alt: f }));
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
