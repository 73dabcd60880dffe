// review.js: the Review page (#page-review): detection cards of one prediction, verdicts given with buttons
// or keys and saved at once, the verified precision per score bin, and the export of verified windows as a
// manifest. Starts from the prediction in the URL (#/review?prediction=REF), else the one Analyze opened last.
import { apiUrl, get, isAbort, post } from "./api.js";
import { $, el, fillSelect, fmtTime, say } from "./dom.js";
import { renderSummary } from "./review_summary.js";
import { replaceParams } from "./route.js";
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

const q = (sel) => $(sel, root);
const msg = (text, kind) => say(q("#review-msg"), text, kind);
const withCard = (fn) => () => (current < 0 ? false : fn(current));

/** Keys of this page (keys.js calls them only while it is shown). */
export const keys = {
  j: withCard((i) => focus(i + 1)), ArrowDown: withCard((i) => focus(i + 1)), ArrowRight: withCard((i) => focus(i + 1)),
  k: withCard((i) => focus(i - 1)), ArrowUp: withCard((i) => focus(i - 1)), ArrowLeft: withCard((i) => focus(i - 1)),
  " ": withCard((i) => play(i)), c: withCard((i) => give(i, "correct")), x: withCard((i) => give(i, "wrong")),
  u: withCard((i) => give(i, "clear")), o: withCard((i) => $(".other-species", cards[i].node).focus()),
};

export function mount(section, params = {}) {
  root = section;
  life = new AbortController();
  const { signal } = life;
  const on = (sel, type, fn) => q(sel).addEventListener(type, fn, { signal });
  on("#review-load", "click", () => load());
  on("#review-prediction", "change", () => load());
  on("#review-mode", "change", () => load());
  on("#review-filter", "change", () => render());
  on("#target", "change", () => summary());
  on("#export", "click", () => exportManifest());
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
    fillSelect(s, predictions.map((p) => [p.ref, p.name]), wanted || s.value);
    if (!predictions.length) msg("No predictions yet: analyze a recording first (or serve a folder holding `birdspec predict` CSV or Parquet tables).");
    else if (s.value !== ref) await load();
    else replaceParams("review", { prediction: ref });
  } catch (err) { if (!isAbort(err)) msg(err.message); }
}

async function load() {
  const { signal } = life, wanted = q("#review-prediction").value;
  if (!wanted) return;
  const mine = ++seq;
  if (wanted !== ref) {  // nothing of the prediction left is shown or acted on while the next one loads
    ref = null; data = null; given = new Map();
    clear("loading…");
  }
  msg("");
  try {
    const answer = await get("/review", { prediction: wanted, mode: q("#review-mode").value, per_bin: q("#per-bin").value }, { signal });
    if (mine !== seq) return;  // another prediction (or order) was asked for since
    for (const c of answer.cards) if (given.has(c.key)) Object.assign(c, given.get(c.key));
    ref = wanted; data = answer; current = -1;
    replaceParams("review", { prediction: ref });
    fillSelect(q("#review-species"), data.classes.map((c) => [c.label, c.common_name || c.label]), "");
    render();
    summary();
  } catch (err) { if (!isAbort(err) && mine === seq) msg(err.message); }
}

function clear(text) {
  const box = q("#cards");
  box.innerHTML = "";
  box.dataset.prediction = "";
  cards = []; current = -1;
  box.append(el("p", { class: "muted", text }));
  q("#summary").innerHTML = "";
}

function render() {
  if (!data) return;
  const box = q("#cards"), filt = q("#review-filter").value.trim().toLowerCase();
  box.innerHTML = "";
  box.dataset.prediction = ref;
  cards = [];
  const groups = new Map();
  for (const c of data.cards) {
    if (filt && !c.label.toLowerCase().includes(filt) && !(c.common_name || "").toLowerCase().includes(filt)) continue;
    if (!groups.has(c.label)) groups.set(c.label, []);
    groups.get(c.label).push(c);
  }
  for (const [label, group] of groups) {
    const row = el("div", { class: "cardrow" });
    box.append(el("div", { class: "group" }, el("h3", { text: `${group[0].common_name || label} (${label}) · ${group.length} shown` }), row));
    for (const c of group) { const node = card(c, cards.length); row.append(node); cards.push({ c, node }); }
  }
  current = -1;
  if (!cards.length) box.append(el("p", { class: "muted", text: "No detections to show." }));
  else focus(0, false);
}

function card(c, i) {
  const node = el("div", { class: "card", "data-key": c.key, tabindex: "-1" });
  const img = c.audio ? el("img", { loading: "lazy", alt: "spectrogram", src: apiUrl("/spectrogram", { ref: c.audio, start_s: c.start_s, duration_s: c.end_s - c.start_s, width_px: 320 }) })
    : el("div", { class: "muted", text: "recording not in the served folders" });
  const species = el("input", { list: "review-species", placeholder: "other species", class: "other-species" });
  species.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); give(i, "other", species.value); species.blur(); } });
  node.append(
    img,
    el("div", { class: "meta" }, el("span", { text: `${fmtTime(c.start_s)}–${fmtTime(c.end_s)} · ${c.file.split("/").pop()}` }), el("strong", { text: c.confidence.toFixed(2) })),
    el("div", { class: "top", text: "top 3: " + c.top.map(([l, s]) => `${l} ${s.toFixed(2)}`).join(", ") }),
    el("div", { class: "actions" },
      el("button", { text: "▶", title: "play (space)", onclick: () => play(i) }),
      el("button", { text: "correct (c)", onclick: () => give(i, "correct") }),
      el("button", { text: "wrong (x)", onclick: () => give(i, "wrong") }),
      species,
      el("span", { class: "verdict" })));
  node.addEventListener("click", () => focus(i, false));
  paint(node, c);
  return node;
}

function paint(node, c) {
  node.classList.remove("v-correct", "v-wrong", "v-other");
  if (c.verdict) node.classList.add("v-" + c.verdict);
  $(".verdict", node).textContent = c.verdict === "other" ? `other: ${c.species}` : c.verdict || "";
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
    await post("/verdict", { prediction, verdict, species,
      detection: { file: c.file, start_s: c.start_s, end_s: c.end_s, label: c.label, confidence: c.confidence } });
    if (prediction !== ref) return;  // another prediction is shown now: this card is gone with its own
    const saved = { verdict: verdict === "clear" ? "" : verdict, species: verdict === "other" ? species : verdict === "correct" ? c.label : "" };
    given.set(c.key, saved);
    const shownNow = cards.find((x) => x.c.key === c.key) || { c, node };  // the cards may have been drawn again
    Object.assign(shownNow.c, saved);
    paint(shownNow.node, shownNow.c);
    msg("");
    if (verdict !== "clear" && cards[i] && cards[i].node === node) focus(i + 1);
    summary();
  } catch (err) { msg(err.message); }
}

async function summary() {
  if (!ref) return;
  const { signal } = life, forRef = ref;
  try {
    const { species } = await get("/summary", { prediction: forRef, target: q("#target").value }, { signal });
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
