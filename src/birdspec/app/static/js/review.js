// review.js: the Review page (#page-review): the review queue of one prediction (top choices at or above the
// model's thresholds or a minimum score, species by count or name, a page per species at a time), verdicts
// given with buttons or keys and saved at once, the verified precision per score bin, and the export of
// verified windows as a manifest. Starts from the prediction in the URL (#/review?prediction=REF), else the
// one Analyze opened last.
import { apiUrl, get, isAbort, post } from "./api.js";
import { $, el, fillSelect, say } from "./dom.js";
import { cardAxis, cardNode, groupHeading, minimumNote, paint } from "./review_cards.js";
import { renderSummary } from "./review_summary.js";
import { replaceParams } from "./route.js";
import * as similar from "./similar.js";
import { getLastPrediction } from "./state.js";

let root = null;
let life = null;         // AbortController of the current showing of the page
let ref = null;          // the prediction whose cards are shown (null while another one loads)
let data = null;         // GET /api/review of it
let seq = 0;             // number of the latest load asked for: the answers of earlier ones are dropped
let given = new Map();   // card key -> {verdict, species} saved for `ref` (kept over a reload of its cards)
let cards = [];          // [{c, node}] in the order shown
let current = -1;        // index of the focused card
let clip = null;         // the Audio playing a card's clip
let lastSeen = null;     // the store's last prediction when this page last looked
const axes = new Map();  // recording ref -> promise of its mel axis ticks (the cards' frequency labels)

const q = (sel) => $(sel, root);
const msg = (text, kind) => say(q("#review-msg"), text, kind);
const withCard = (fn) => () => (current < 0 ? false : fn(current));

export const keyHelp = [["j / k", "next / previous card (or the arrow keys)"], ["space", "play the card"],
  ["c", "correct"], ["x", "wrong"], ["o", "other species: type, pick from the list, Enter"], ["u", "clear the verdict"],
  ["f", "find similar windows to the card in the index (--index)"], ["r", "agile round on this search or round table"]];
const job = () => ({ signal: life.signal, say: msg });

/** Keys of this page (keys.js calls them only while it is shown). */
export const keys = {
  j: withCard((i) => focus(i + 1)), ArrowDown: withCard((i) => focus(i + 1)), ArrowRight: withCard((i) => focus(i + 1)),
  k: withCard((i) => focus(i - 1)), ArrowUp: withCard((i) => focus(i - 1)), ArrowLeft: withCard((i) => focus(i - 1)),
  " ": withCard((i) => play(i)), c: withCard((i) => give(i, "correct")), x: withCard((i) => give(i, "wrong")),
  u: withCard((i) => give(i, "clear")), o: withCard((i) => $(".other-species", cards[i].node).focus()),
  f: withCard((i) => (q("#review-similar").hidden ? false : similar.fromCard(cards[i].c, q("#review-index"), job()))),
  r: () => similar.round(job()),
};

export function mount(section, params = {}) {
  root = section;
  life = new AbortController();
  const { signal } = life;
  const on = (sel, type, fn) => q(sel).addEventListener(type, fn, { signal });
  on("#review-load", "click", () => load({ keepCard: true }));  // the same queue again: the card in hand stays
  for (const sel of ["#review-prediction", "#review-mode", "#review-choices", "#review-order", "#review-min"]) on(sel, "change", () => load());
  on("#review-filter", "change", () => render());
  on("#target", "change", () => summary());
  on("#export", "click", () => exportManifest());
  on("#review-find", "click", () => current >= 0 && similar.fromCard(cards[current].c, q("#review-index"), job()));
  on("#review-agile", "click", () => similar.round(job()));
  refreshList(params.prediction);
}

/** The URL changed while the page is shown. */
export function update(params) {
  if (params.prediction && params.prediction !== ref) refreshList(params.prediction);
}

export function unmount() {
  if (clip) clip.pause();
  life.abort();
}

async function refreshList(wanted) {
  const { signal } = life, last = getLastPrediction();
  if (!wanted && last !== lastSeen) wanted = last;  // a prediction opened in Analyze since
  lastSeen = last;
  try {
    const { predictions } = await get("/predictions", null, { signal });
    const s = q("#review-prediction");
    const shown = predictions.filter((p) => !p.batch || p.ref === wanted);  // a folder run is one entry, not one per recording
    fillSelect(s, shown.map((p) => [p.ref, p.folder ? `${p.folder} (${p.recordings} recordings) · ${p.name}` : p.name]), wanted || s.value);
    if (!shown.length) msg("No predictions yet: analyze a recording first (or serve a folder holding `birdspec predict` CSV or Parquet tables).");
    else if (s.value !== ref) await load();
    else replaceParams("review", { prediction: ref });
  } catch (err) { if (!isAbort(err)) msg(err.message); }
}

async function load({ keepCard = false } = {}) {
  const { signal } = life, wanted = q("#review-prediction").value;
  if (!wanted) return;
  const mine = ++seq;
  if (wanted !== ref) {  // nothing of the prediction left is shown or acted on while the next one loads
    ref = null; data = null; given = new Map();
    clear("loading…");
  }
  msg("");
  try {
    const answer = await get("/review", query({ prediction: wanted }), { signal });
    if (mine !== seq) return;  // another prediction (or order) was asked for since
    for (const c of answer.cards) if (given.has(c.key)) Object.assign(c, given.get(c.key));
    const keep = keepCard && wanted === ref && current >= 0 && cards[current] ? cards[current].c.key : null;
    ref = wanted; data = answer; current = -1;
    replaceParams("review", { prediction: ref });
    const named = (list) => list.map((c) => [c.label, c.common_name || c.scientific_name || c.label]);
    fillSelect(q("#review-classes"), named(data.classes), "");
    fillSelect(q("#review-species"), named(data.species), "");
    q("#review-min-note").textContent = minimumNote(data, q("#review-choices").value);
    render(keep);
    summary();
    similar.showTable(root, ref, job());
  } catch (err) { if (!isAbort(err) && mine === seq) msg(err.message); }
}

/** The queue's settings of the page's controls, with `extra` (the prediction, a species' next page). */
function query(extra) {
  return { mode: q("#review-mode").value, per_bin: q("#per-bin").value, choices: q("#review-choices").value,
    order: q("#review-order").value, min_score: q("#review-min").value === "" ? "model" : q("#review-min").value, ...extra };
}

/** The next page of species `label`'s cards, added after those shown. */
async function more(label) {
  const { signal } = life, forRef = ref, g = data.groups.find((x) => x.label === label);
  const shownOf = data.cards.filter((c) => c.label === label).length;
  try {
    const answer = await get("/review", query({ prediction: forRef, species: label, offset: g.offset + shownOf }), { signal });
    if (forRef !== ref || !answer.groups.length) return;
    const keep = current >= 0 && cards[current] ? cards[current].c.key : null;
    for (const c of answer.cards) if (given.has(c.key)) Object.assign(c, given.get(c.key));
    const lastOf = data.cards.map((c) => c.label).lastIndexOf(label);
    data.cards.splice(lastOf + 1, 0, ...answer.cards);
    render(keep);
  } catch (err) { if (!isAbort(err)) msg(err.message); }
}

function clear(text) {
  const box = q("#cards");
  box.innerHTML = "";
  box.dataset.prediction = "";
  cards = []; current = -1;
  box.append(el("p", { class: "muted", text }));
  q("#summary").innerHTML = "";
}

function render(focusKey = null) {
  if (!data) return;
  const box = q("#cards"), filt = q("#review-filter").value.trim().toLowerCase();
  const active = document.activeElement, typing = active && active.matches("#cards input.other-species")
    ? { key: active.closest(".card").dataset.key, value: active.value } : null;  // kept over the redraw
  box.innerHTML = "";
  box.dataset.prediction = ref;
  cards = [];
  const byLabel = new Map(data.groups.map((g) => [g.label, []]));
  for (const c of data.cards) if (byLabel.has(c.label)) byLabel.get(c.label).push(c);
  for (const g of data.groups) {
    const names = [g.label, g.name, g.common_name, g.scientific_name].map((n) => (n || "").toLowerCase());
    if (filt && !names.some((n) => n.includes(filt))) continue;
    const group = byLabel.get(g.label), row = el("div", { class: "cardrow" });
    box.append(el("div", { class: "group", "data-label": g.label }, groupHeading({ ...g, pageSize: data.page_size }, group.length, () => more(g.label)), row));
    for (const c of group) {
      const i = cards.length;
      const node = cardNode(c, { play: () => play(i), give: (v, sp) => give(i, v, sp), focus: () => focus(i, false) });
      row.append(node);
      cards.push({ c, node });
    }
  }
  current = -1;
  if (!cards.length) box.append(el("p", { class: "muted", text: "No detections to show at this minimum score." }));
  else focus(Math.max(0, cards.findIndex((x) => x.c.key === focusKey)), focusKey !== null);
  for (const ref of new Set(cards.map((x) => x.c.audio).filter(Boolean))) {
    if (!axes.has(ref)) axes.set(ref, get("/display", { ref, axis: "mel" }).then((d) => d.ticks).catch(() => []));
    axes.get(ref).then((ticks) => { for (const x of cards) if (x.c.audio === ref) cardAxis(x.node, ticks); });
  }
  const field = typing && cards.find((x) => x.c.key === typing.key);
  if (field) { const input = $(".other-species", field.node); input.value = typing.value; input.focus(); }
}

function focus(i, scroll = true) {
  if (!cards.length) return;
  i = Math.max(0, Math.min(cards.length - 1, i));
  if (current >= 0 && cards[current]) cards[current].node.classList.remove("current");
  current = i;
  const node = cards[i].node;
  node.classList.add("current");
  if (scroll) node.scrollIntoView({ block: "nearest" });
}

function play(i) {
  const { c } = cards[i];
  if (!c.audio) return;
  if (clip) clip.pause();
  clip = new Audio(apiUrl("/clip", { ref: c.audio, start_s: c.start_s, end_s: c.end_s }));
  clip.play().catch((err) => msg(`cannot play: ${err.message}`));
}

async function give(i, verdict, species = "") {
  const { c, node } = cards[i], prediction = ref;
  try {
    const r = await post("/verdict", { prediction, verdict, species,
      detection: { file: c.file, start_s: c.start_s, end_s: c.end_s, label: c.label, confidence: c.confidence } });
    if (prediction !== ref) return;  // another prediction is shown now: this card is gone with its own
    const saved = { verdict: verdict === "clear" ? "" : verdict, species: verdict === "other" ? r.species : verdict === "correct" ? c.label : "" };
    given.set(c.key, saved);
    const shownNow = cards.find((x) => x.c.key === c.key) || { c, node };  // the cards may have been drawn again
    Object.assign(shownNow.c, saved);
    paint(shownNow.node, shownNow.c);
    msg("");
    // the next card comes in hand if the judged one is still in hand (found by key: the cards may have been
    // drawn again while the verdict was saved, with the judged card kept in hand)
    const at = cards.findIndex((x) => x.c.key === c.key);
    if (verdict !== "clear" && at >= 0 && at === current) focus(at + 1);
    summary();
  } catch (err) { msg(err.message); }
}

async function summary() {
  if (!ref) return;
  const { signal } = life, forRef = ref;
  try {
    const { species } = await get("/summary", { prediction: forRef, target: q("#target").value, choices: q("#review-choices").value }, { signal });
    if (forRef !== ref) return;
    renderSummary(q("#summary"), species);
  } catch (err) { if (!isAbort(err)) msg(err.message); }
}

async function exportManifest() {
  if (!ref) return;
  try {
    const r = await post("/export", { prediction: ref });
    const box = q("#export-result");
    box.hidden = false;
    box.textContent = `Exported ${r.rows} verified windows (${Object.entries(r.labels).map(([k, v]) => `${k} ${v}`).join(", ")}) to ${r.path}. Prepare it with: ${r.command} — or use the Train page.`;
    box.dataset.path = r.path;
  } catch (err) { msg(err.message); }
}
