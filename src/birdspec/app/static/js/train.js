// train.js: the Train page (#page-train): pick the predictions and exported manifests whose verified windows to
// pool, the recipe, model (from the registry), epochs and device; prepare, train and evaluate them as a
// background job whose progress, split and curves are followed while the page is shown, and picked up again
// when it is shown again.
import { get, isAbort, post } from "./api.js";
import { CURVES_NOTE, drawCurves } from "./curves.js";
import { $, el, fillSelect, say } from "./dom.js";
import { pollJob } from "./jobs.js";
import { href } from "./route.js";

const CURVES_EVERY_MS = 2000;

let root = null;
let life = null;         // AbortController of the current showing of the page
let pendingJob = null;   // id of the training job not yet seen to end
let recipes = [];        // GET /api/train-options' recipes

const q = (sel) => $(sel, root);
const msg = (text, kind) => say(q("#train-msg"), text, kind);

export const keyHelp = [];

export const keys = {};

export function mount(section) {
  root = section;
  life = new AbortController();
  const { signal } = life;
  q("#train-start").addEventListener("click", start, { signal });
  q("#train-recipe").addEventListener("change", showRecipe, { signal });
  q("#train-start").disabled = false;
  refresh();
  if (pendingJob) follow(pendingJob);
}

export function unmount() {
  life.abort();
}

const note = (text) => el("li", { class: "muted", text });

async function refresh() {
  const { signal } = life;
  const ul = q("#train-sources");
  if (!ul.querySelector("input")) ul.replaceChildren(note("loading the predictions with verdicts, exported manifests and boxes…"));
  if (!recipes.length) {  // apart: the choices need the model registry, which may take a while the first time
    get("/train-options", null, { signal }).then(fillOptions).catch((err) => { if (!isAbort(err)) msg(err.message); });
  }
  try {
    const { sources } = await get("/train-sources", null, { signal });
    const checked = new Set([...ul.querySelectorAll("input:checked")].map((c) => c.value));
    ul.innerHTML = "";
    for (const s of sources) {
      const box = el("input", { type: "checkbox", value: s.ref });
      box.checked = checked.has(s.ref) || (!checked.size && s.kind === "prediction");
      const what = s.kind === "prediction" ? `prediction · ${s.verified} verified windows`
        : s.kind === "boxes" ? `boxes drawn on ${s.recording} · ${s.verified}` : "exported manifest";
      ul.append(el("li", {}, el("label", {}, box, ` ${s.name} `, el("span", { class: "muted", text: `(${what})` }))));
    }
    if (!sources.length) {
      ul.append(note("none yet: verify detections in Review (c correct, o other species) or draw and name boxes in Analyze, then train here"));
    }
  } catch (err) {
    if (isAbort(err)) return;
    if (!ul.querySelector("input")) ul.replaceChildren(note("could not load the sources (see the message below)"));
    msg(err.message);
  }
}

function fillOptions(options) {
  recipes = options.recipes;
  fillSelect(q("#train-recipe"), recipes.map((r) => [r.name, r.name || "none (model defaults)"]), options.defaults.recipe);
  fillSelect(q("#train-model"), options.models.map((m) => [m.name, m.name]), options.defaults.model);
  for (const o of q("#train-model").options) o.title = (options.models.find((m) => m.name === o.value) || {}).description || "";
  fillSelect(q("#train-device"), options.devices.map((d) => [d, d === "auto" ? "auto (GPU if there is one)" : d]), options.defaults.device);
  showRecipe();
}

function showRecipe() {
  const r = recipes.find((x) => x.name === q("#train-recipe").value);
  if (!r) return;
  q("#train-epochs").placeholder = String(r.epochs);
  q("#train-recipe-summary").textContent = `${r.name || "no recipe"}: ${r.summary}; ${r.epochs} epochs unless set`;
}

async function start() {
  msg("");
  const sources = [...q("#train-sources").querySelectorAll("input:checked")].map((c) => c.value);
  if (!sources.length) { msg("tick the predictions or manifests whose verified windows to train on"); return; }
  q("#train-start").disabled = true;
  let job;
  try {
    job = await post("/train", { sources, recipe: q("#train-recipe").value, model: q("#train-model").value,
      epochs: q("#train-epochs").value || null, device: q("#train-device").value,
      name: q("#train-name").value || undefined });  // not cancelled: the id must not be lost
  } catch (err) {
    msg(err.message);
    q("#train-start").disabled = false;
    return;
  }
  pendingJob = job.id;
  if (!life.signal.aborted) follow(job.id);  // else the next showing of the page follows it
}

async function showCurves(run, signal) {
  const details = await get("/run", { ref: run }, { signal });
  q("#train-curves").hidden = false;
  q("#train-curves-note").hidden = false;
  q("#train-curves-note").textContent = CURVES_NOTE;
  drawCurves(q("#train-curves"), details.curves);
  return details;
}

const metricText = (m) => (m ? `${m.name} ${m.value.toFixed(3)}${typeof m.accuracy === "number" ? `, accuracy ${m.accuracy.toFixed(3)}` : ""}` : "no metric");

/** The done line's figures, each saying whose it is: birdspec evaluate's of the kept checkpoint on the validation
 * windows (per window: each verified window is its own recording), and training's own val_acc of the curves, which
 * also counts the fixed no-bird samples (GET /api/run's val_check says on how many samples, and its parts). */
function doneText(details) {
  const rec = (details.eval_val || {}).recording || {}, s = details.summary || {};
  const n = typeof rec.n === "number" ? `${rec.n} ` : "";
  const evaluated = `evaluated (birdspec evaluate, per window) on its ${n}validation windows: ${metricText(details.entry.metric)}`;
  const training = details.val_check ? `; ${details.val_check.text}`
    : typeof s.best_val_acc === "number"
      ? `; the curves' val_acc is training's own, ${s.best_val_acc.toFixed(3)} at its best epoch (${s.best_epoch}) on the validation samples` : "";
  return `${evaluated}${training}. `;
}

async function follow(id) {
  const { signal } = life;
  q("#train-start").disabled = true;
  q("#train-progress").hidden = false;
  q("#train-done").hidden = true;
  let lastCurves = 0;
  try {
    const job = await pollJob(id, { signal, onUpdate: async (j) => {
      q("#train-bar").value = j.progress;
      q("#train-text").textContent = j.message;
      if (j.result && j.result.split_notes) { q("#train-split").hidden = false; q("#train-split").textContent = j.result.split_notes; }
      if (j.result && j.result.curves && Date.now() - lastCurves > CURVES_EVERY_MS) {  // once an epoch is written
        lastCurves = Date.now();
        try { await showCurves(j.result.run, signal); } catch (err) { if (isAbort(err)) throw err; /* not written yet */ }
      }
    } });
    pendingJob = null;
    if (job.status === "failed") throw new Error(job.message);
    const details = await showCurves(job.result.run, signal);
    const done = q("#train-done");
    done.hidden = false;
    done.innerHTML = "";
    done.append(`Trained ${job.result.run}, ${doneText(details)}`,
      el("a", { href: href("runs", { run: job.result.run }), text: "Its metrics and confusion matrix" }),
      "; it is now in the checkpoint list of Analyze.");
    refresh();
  } catch (err) {
    if (isAbort(err)) return;
    pendingJob = null;
    msg(err.message);
  }
  q("#train-start").disabled = false;
}
