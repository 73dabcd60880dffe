// similar.js: "find similar" and agile rounds (birdspec serve --index): the served indexes, a search started
// from a box (Analyze) or a card (Review), an agile round started from a search or round table, each a background
// job followed to its end, after which the table it made opens in Review (#/review?prediction=REF); and the note
// Review shows of such a table (a search's query, a round's counts and cross-validated precision and recall).
import { get, isAbort, post } from "./api.js";
import { $, fillSelect } from "./dom.js";
import { pollJob } from "./jobs.js";
import { href } from "./route.js";

let served = null;   // promise of the served indexes (GET /api/indexes), asked once
let shown = null;    // {ref, ...GET /api/similar/table} of the table Review shows, when it is a search or round
let asked = null;    // the table Review asked about last
let running = false; // a search or round is being followed: a second key press starts nothing

const fmt = (x) => (x === null || x === undefined ? "n/a" : (+x).toFixed(2));

/** The served indexes ([] without --index). */
export function indexes() {
  if (!served) served = get("/indexes").then((r) => r.indexes).catch((err) => { served = null; throw err; });
  return served;
}

/** Fill `select` with the served indexes and show `wrap` only when there is one; resolves to how many. */
export async function fillIndexes(select, wrap) {
  const list = await indexes();
  fillSelect(select, list.map((i) => [i.key, `${i.key} (${i.windows} windows)`]));
  wrap.hidden = !list.length;
  return list.length;
}

/** Follow job `job` (say(text) shows its progress); open its table in Review when done; throws its failure. */
async function follow(job, what, signal, say) {
  running = true;
  try {
    const done = await pollJob(job.id, { signal, onUpdate: (j) => say(`${what}: ${Math.round(j.progress * 100)} % ${j.message}`, "ok") });
    if (done.status === "failed") throw new Error(done.message);
    say("", "ok");
    location.hash = href("review", { prediction: done.result.prediction });
    return done.result;
  } finally { running = false; }
}

/** Search index `query.index` for windows like `query` ({recording, start_s, end_s, species}). */
export async function findSimilar(query, { signal, say }) {
  if (running) return;
  if (!query.index) { say("no index to search: start birdspec serve with --index DIR"); return; }
  if (!query.species) { say("name the species to look for first (the box's species field)"); return; }
  try {
    await follow(await post("/similar", query), `finding ${query.species} in ${query.index}`, signal, say);
  } catch (err) { if (!isAbort(err)) say(err.message); }
}

/** "Find similar" on Review card `c` (its species: the one named by an "other" verdict, else its label). */
export function fromCard(c, select, { signal, say }) {
  if (!c.audio) { say("this card's recording is not in the served folders: it cannot be searched for"); return; }
  findSimilar({ index: select.value, recording: c.audio, start_s: c.start_s, end_s: c.end_s,
    species: c.verdict === "other" ? c.species : c.label }, { signal, say });
}

/** An agile round from the search or round table shown in Review; false when it is no such table. */
export function round({ signal, say }) {
  if (!shown) return false;
  if (running) return true;
  const { ref, species, index } = shown;
  post("/agile", { prediction: ref })
    .then((job) => follow(job, `agile round of ${species} on ${index}`, signal, say))
    .catch((err) => { if (!isAbort(err)) say(err.message); });
  return true;
}

function describe(t) {
  const v = t.verdicts, tally = `${v.correct} correct, ${v.wrong} wrong, ${v.other} other species`;
  if (t.kind === "search") {
    const q = t.query;
    return `Search of ${t.index} for ${t.species}: the windows most like ${q.recording} ${q.start_s}–${q.end_s} s `
      + `(${t.query_vector}; confidence = cosine similarity). Verdicts on ${t.index}'s ${t.species} tables so far: ${tally}. `
      + "Press r for an agile round.";
  }
  const s = t.summary || {};
  return `Agile round ${t.round} of ${t.species} on ${t.index}: trained on ${s.positives} yes and ${s.negatives} no verdicts `
    + `(and ${s.random_negatives} random windows as weak negatives); cross-validated precision ${fmt(s.cv_precision)}, `
    + `recall ${fmt(s.cv_recall)} (${s.cv_windows} verified windows); ${s.windows_above_threshold} windows of the index `
    + `score at or above the threshold. ${t.model ? `Checkpoint for Analyze: ${t.model}. ` : ""}`
    + `These are the next windows to verify (verdicts so far: ${tally}); then press r for the next round.`;
}

/** Say in Review's `root` what table `ref` is (and offer a round), or hide that note for any other table. */
export async function showTable(root, ref, { signal, say }) {
  shown = null;
  asked = ref;
  const note = $("#similar-info", root), button = $("#review-agile", root);
  note.hidden = true; button.hidden = true;
  try {
    const [t, count] = await Promise.all([get("/similar/table", { prediction: ref }, { signal }),
      fillIndexes($("#review-index", root), $("#review-similar", root))]);
    if (asked !== ref || !t.kind || !count) return;  // another table was opened meanwhile
    shown = { ...t, ref };
    $("#review-index", root).value = t.index;
    note.textContent = describe(t);
    note.hidden = false; button.hidden = false;
  } catch (err) { if (!isAbort(err)) say(err.message); }
}
