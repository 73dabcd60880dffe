// analyze.js: the Analyze page (#page-analyze): pick or upload a recording, predict it with a checkpoint
// as a background job (followed while the page is shown, picked up again when it is shown again), and open
// a prediction in the timeline (timeline.js). The opened prediction goes to the store (Review starts there)
// and into the URL (#/analyze?prediction=REF), so a reload shows it again.
import { apiUrl, get, isAbort, post, request } from "./api.js";
import { $, el, fillSelect, fmtTime, say } from "./dom.js";
import { pollJob } from "./jobs.js";
import { fillIndexes, findSimilar } from "./similar.js";
import { href, replaceParams } from "./route.js";
import { getSettings, hasSettings, setLastPrediction } from "./state.js";
import { Timeline } from "./timeline.js";

let root = null;
let life = null;          // AbortController of the current showing of the page
let timeline = null;
let pendingJob = null;    // id of the prediction job not yet seen to end
let openRef = null;       // the prediction shown

const q = (sel) => $(sel, root);
const msg = (text, kind) => say(q("#analyze-msg"), text, kind);

export const keyHelp = [["space", "play or pause"], ["+ or =", "zoom in"], ["-", "zoom out"],
  ["p", "play the box picked (drag on the spectrogram to draw one)"], ["Delete", "delete the box picked"],
  ["f", "find similar windows to the box picked in the index (--index), for its species"]];

/** Keys of this page (keys.js calls them only while it is shown). */
export const keys = {
  " ": () => (timeline && timeline.hasPrediction ? timeline.togglePlay() : false),
  "+": () => (timeline && timeline.hasPrediction ? timeline.zoomBy(-1) : false),
  "=": () => (timeline && timeline.hasPrediction ? timeline.zoomBy(-1) : false),
  "-": () => (timeline && timeline.hasPrediction ? timeline.zoomBy(1) : false),
  p: () => (timeline && timeline.boxes.selected >= 0 ? timeline.boxes.play() : false),
  Delete: () => (timeline && timeline.boxes.selected >= 0 ? timeline.boxes.remove() : false),
  f: () => (timeline && timeline.boxes.selected >= 0 && !q("#box-similar-wrap").hidden ? similarToBox() : false),
};

export function mount(section, params = {}) {
  root = section;
  life = new AbortController();
  if (!hasSettings()) { msg("the server's settings could not be read; is birdspec serve running? Reload the page"); return; }
  const { signal } = life;
  if (!timeline) timeline = new Timeline(root, getSettings(), (text) => msg(text));
  timeline.onMinChange = (min) => downloads(min);
  timeline.attach(signal);
  q("#predict").addEventListener("click", () => predict(), { signal });
  q("#predict-folder").addEventListener("click", () => predict(true), { signal });
  q("#upload").addEventListener("change", (e) => upload(e.target.files[0]), { signal });
  q("#open-prediction").addEventListener("change", (e) => e.target.value && open(e.target.value), { signal });
  q("#box-similar").addEventListener("click", () => similarToBox(), { signal });
  q("#predict").disabled = q("#predict-folder").disabled = false;
  refreshLists();
  fillIndexes(q("#box-index"), q("#box-similar-wrap")).catch((err) => msg(err.message));
  if (pendingJob) follow(pendingJob);
  update(params);
}

/** The URL changed while the page is shown. */
export function update(params) {
  if (params.prediction && params.prediction !== openRef) open(params.prediction);
  else if (openRef) replaceParams("analyze", { prediction: openRef });
}

export function unmount() {
  if (timeline) timeline.stop();
  life.abort();
}

async function refreshLists() {
  const { signal } = life, settings = getSettings();
  try {
    const [recs, ckpts, preds, dirs] = await Promise.all([get("/recordings", null, { signal }), get("/checkpoints", null, { signal }),
      get("/predictions", null, { signal }), get("/folders", null, { signal })]);
    fillSelect(q("#folder"), dirs.folders.map((d) => [d, d]));
    const rs = q("#recording"), keep = rs.value;
    rs.innerHTML = "";
    for (const f of recs.folders) {
      const g = el("optgroup", { label: `${f.key} (${f.path})` });
      for (const ref of f.files) g.append(el("option", { value: ref, text: ref.split("/").slice(1).join("/") }));
      if (f.files.length) rs.append(g);
    }
    if (keep) rs.value = keep;
    fillSelect(q("#checkpoint"), ckpts.checkpoints.map((c) => [c.ref, c.error ? `${c.name} (damaged)`
      : `${c.name}${c.model ? " · " + c.model : ""}${c.classes ? " · " + c.classes.length + " classes" : ""}`]));
    if (!ckpts.checkpoints.length) msg(`No checkpoints under ${settings.folders.runs}: train one (birdspec train) or start birdspec serve with --runs DIR.`);
    fillSelect(q("#open-prediction"), [["", "an earlier prediction…"], ...preds.predictions.filter((p) => p.recording).map((p) => [p.ref, p.name])], "");
  } catch (err) { if (!isAbort(err)) msg(err.message); }
}

/** Find the windows of the index most like the box picked, for the species named in its field. */
function similarToBox() {
  const boxes = timeline.boxes, b = boxes.items[boxes.selected];
  findSimilar({ index: q("#box-index").value, recording: boxes.recording, start_s: +b.start_s.toFixed(3),
    end_s: +b.end_s.toFixed(3), species: q("#box-species").value.trim() || b.species },
  { signal: life.signal, say: msg });
}

async function upload(file) {
  if (!file) return;
  const { signal } = life, limitMb = getSettings().max_upload_mb;
  if (file.size > limitMb * 1048576) {
    msg(`${file.name}: the upload is larger than the limit of ${limitMb} MB; put the file in a served recordings folder instead`);
  } else {
    msg(`uploading ${file.name}…`, "ok");
    try {
      const r = await request("/upload", { method: "POST", params: { name: file.name }, body: file, signal });
      await refreshLists();
      q("#recording").value = r.ref;
      msg(`uploaded ${file.name} (${fmtTime(r.duration_s)})${r.warning ? ` — cut off (${r.warning}): the part that decodes is used` : ""}`, "ok");
    } catch (err) { if (!isAbort(err)) msg(err.message); }
  }
  q("#upload").value = "";
}

async function predict(wholeFolder = false) {
  const recording = q("#recording").value, checkpoint = q("#checkpoint").value, folder = q("#folder").value;
  if (!(wholeFolder ? folder : recording) || !checkpoint) { msg(`pick a ${wholeFolder ? "folder" : "recording"} and a checkpoint first`); return; }
  msg("");
  q("#predict").disabled = q("#predict-folder").disabled = true;
  let job;
  try {  // not cancelled: the job id must not be lost
    job = await (wholeFolder ? post("/predict-folder", { folder, checkpoint }) : post("/predict", { recording, checkpoint }));
  } catch (err) {
    msg(err.message);
    q("#predict").disabled = q("#predict-folder").disabled = false;
    return;
  }
  pendingJob = job.id;
  if (!life.signal.aborted) follow(job.id);  // else the next showing of the page follows it
}

async function follow(id) {
  const { signal } = life;
  q("#predict").disabled = q("#predict-folder").disabled = true;
  q("#progress-box").hidden = false;
  try {
    const job = await pollJob(id, { signal, onUpdate: (j) => {
      q("#progress").value = j.progress;
      q("#progress-text").textContent = `${Math.round(j.progress * 100)} % ${j.message}`;
    } });
    if (job.status === "failed") { pendingJob = null; throw new Error(job.message); }
    q("#progress-text").textContent = `done in ${job.elapsed_s.toFixed(1)} s`;
    if (job.kind === "batch") batchDone(job.result);
    await open(job.kind === "batch" ? job.result.members[0].prediction : job.result.prediction);
    if (signal.aborted) return;  // left meanwhile: the next showing opens it
    pendingJob = null;
    refreshLists();
  } catch (err) {
    if (isAbort(err)) return;
    pendingJob = null;
    msg(err.message);
    q("#progress-box").hidden = true;
  }
  q("#predict").disabled = q("#predict-folder").disabled = false;
}

/** Say what a folder run gave: its recordings (the first is opened), those skipped, and the way to Review it. */
function batchDone(result) {
  const box = q("#analyze-msg");
  box.className = "msg ok";
  box.innerHTML = "";
  const skipped = result.failed.length ? `; skipped ${result.failed.length} that could not be scored (${result.failed.map((f) => f.recording.split("/").pop() + ": " + f.error).join("; ")})` : "";
  box.append(`Analysed ${result.members.length} recordings${skipped}. `, el("a", { href: href("review", { prediction: result.prediction }), text: "Review them all" }),
    ", or open each one from “an earlier prediction”.");
}

/** The download links hold the rows the tracks show: at or above `min` ("model" or a number). */
function downloads(min) {
  if (!openRef) return;
  const min_score = min === "model" ? "model" : min.toFixed(2);
  q("#dl-csv").href = apiUrl("/download", { ref: openRef, format: "csv", min_score });
  q("#dl-raven").href = apiUrl("/download", { ref: openRef, format: "raven", min_score });
  q("#dl-audacity").href = apiUrl("/download", { ref: openRef, format: "audacity", min_score });
}

async function open(ref) {
  const { signal } = life;
  try {
    const pred = await get("/prediction", { ref }, { signal });
    const rec = await get("/recording", { ref: pred.meta.recording }, { signal });
    openRef = ref;
    setLastPrediction(ref);
    replaceParams("analyze", { prediction: ref });
    q("#viewer").hidden = false;
    q("#rec-title").textContent = `${pred.meta.recording} · ${pred.meta.checkpoint} · ${fmtTime(rec.duration_s)}`;
    q("#dl-raven").hidden = !pred.raven;
    const names = q("#species-names");
    names.innerHTML = "";
    for (const c of pred.meta.class_info) names.append(el("option", { value: c.label, text: c.common_name || c.label }));
    timeline.show(pred, rec);
    if (rec.warning) msg(`${pred.meta.recording} is cut off (${rec.warning}): the part that decodes is shown and was scored, as birdspec predict does`, "ok");
  } catch (err) { if (!isAbort(err)) msg(err.message); }
}
