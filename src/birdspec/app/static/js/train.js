// train.js: the Train page (#page-train): prepare an exported manifest and train a model on it as a
// background job; its progress and curves are followed while the page is shown, and picked up again
// when it is shown again.
import { get, isAbort, post } from "./api.js";
import { drawCurves } from "./curves.js";
import { $, fillSelect, say } from "./dom.js";
import { pollJob } from "./jobs.js";

const CURVES_EVERY_MS = 2000;

let root = null;
let life = null;         // AbortController of the current showing of the page
let pendingJob = null;   // id of the training job not yet seen to end

const q = (sel) => $(sel, root);
const msg = (text, kind) => say(q("#train-msg"), text, kind);

export const keys = {};

export function mount(section) {
  root = section;
  life = new AbortController();
  q("#train-start").addEventListener("click", start, { signal: life.signal });
  q("#train-start").disabled = false;
  refresh();
  if (pendingJob) follow(pendingJob);
}

export function unmount() {
  life.abort();
}

async function refresh() {
  try {
    const { manifests } = await get("/manifests", null, { signal: life.signal });
    fillSelect(q("#train-manifest"), manifests.map((m) => [m, m]));
    if (!manifests.length) msg("No exported manifest yet: verify detections in Review and press “Export verified as manifest”.", "ok");
  } catch (err) { if (!isAbort(err)) msg(err.message); }
}

async function start() {
  msg("");
  q("#train-start").disabled = true;
  let job;
  try {
    job = await post("/train", { manifest: q("#train-manifest").value, model: q("#train-model").value,
      epochs: +q("#train-epochs").value, name: q("#train-name").value || undefined });  // not cancelled: the id must not be lost
  } catch (err) {
    msg(err.message);
    q("#train-start").disabled = false;
    return;
  }
  pendingJob = job.id;
  if (!life.signal.aborted) follow(job.id);  // else the next showing of the page follows it
}

async function showCurves(run, signal) {
  const { curves } = await get("/run", { ref: run }, { signal });
  q("#train-curves").hidden = false;
  drawCurves(q("#train-curves"), curves);
}

async function follow(id) {
  const { signal } = life;
  q("#train-start").disabled = true;
  q("#train-progress").hidden = false;
  let lastCurves = 0;
  try {
    const job = await pollJob(id, { signal, onUpdate: async (j) => {
      q("#train-bar").value = j.progress;
      q("#train-text").textContent = j.message;
      if (j.result && j.result.run && Date.now() - lastCurves > CURVES_EVERY_MS) {
        lastCurves = Date.now();
        try { await showCurves(j.result.run, signal); } catch (err) { if (isAbort(err)) throw err; /* not written yet */ }
      }
    } });
    pendingJob = null;
    if (job.status === "failed") throw new Error(job.message);
    await showCurves(job.result.run, signal);
    msg(`trained ${job.result.run}; it is now in the checkpoint list of Analyze and in Runs`, "ok");
  } catch (err) {
    if (isAbort(err)) return;
    pendingJob = null;
    msg(err.message);
  }
  q("#train-start").disabled = false;
}
