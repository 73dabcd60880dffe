// review_cards.js: the Review page's card and group elements: a detection card (spectrogram with its time and
// frequency axes, time, score, the
// model's top 3, play and verdict buttons, the "other species" field that completes from the model's classes
// and the species list), its verdict painting, a species group's heading with the way to its next page, and
// the note saying which minimum score the queue applies. No state: review.js owns the cards and their actions.
import { apiUrl } from "./api.js";
import { $, el, fmtTime } from "./dom.js";

/** A card for detection `c`; `actions` = {play(), give(verdict, species), focus()}. */
export function cardNode(c, actions) {
  const node = el("div", { class: "card", "data-key": c.key, tabindex: "-1" });
  const img = c.audio ? el("div", { class: "spec" }, el("img", { loading: "lazy", alt: "spectrogram", src: apiUrl("/spectrogram", { ref: c.audio, start_s: c.start_s, duration_s: c.end_s - c.start_s, width_px: 320 }) }),
    el("div", { class: "axis" }), el("span", { class: "t0", text: fmtTime(c.start_s) }), el("span", { class: "t1", text: fmtTime(c.end_s) }))
    : el("div", { class: "muted", text: "recording not in the served folders" });
  const species = el("input", { list: "review-species", placeholder: "other species…", class: "other-species", "aria-label": "other species" });
  species.addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); actions.give("other", species.value); species.blur(); }
    if (e.key === "Escape") species.blur();
  });
  node.append(
    img,
    el("div", { class: "meta" }, el("span", { text: `${fmtTime(c.start_s)}–${fmtTime(c.end_s)} · ${c.file.split("/").pop()}` }),
      el("strong", { text: c.confidence.toFixed(2) + (c.rank > 1 ? ` (choice ${c.rank})` : "") })),
    el("div", { class: "top", text: "top 3: " + c.top.map(([l, s]) => `${l} ${s.toFixed(2)}`).join(", ") }),
    el("div", { class: "actions" },
      el("button", { text: "▶", title: "play (space)", onclick: actions.play }),
      el("button", { text: "correct (c)", onclick: () => actions.give("correct") }),
      el("button", { text: "wrong (x)", onclick: () => actions.give("wrong") }),
      species,
      el("span", { class: "verdict" })));
  node.addEventListener("click", actions.focus);
  paint(node, c);
  return node;
}

/** Label the frequency axis of card `node` with `ticks` (GET /api/display's, of its recording's mel axis). */
export function cardAxis(node, ticks) {
  const axis = $(".axis", node);
  if (!axis || axis.childElementCount) return;
  for (const t of ticks) axis.append(el("span", { style: `bottom:${(t.fraction * 100).toFixed(1)}%`, text: `${t.khz}k` }));
}

/** Show `c`'s verdict on its card `node`. */
export function paint(node, c) {
  node.classList.remove("v-correct", "v-wrong", "v-other");
  if (c.verdict) node.classList.add("v-" + c.verdict);
  $(".verdict", node).textContent = c.verdict === "other" ? `other: ${c.species}` : c.verdict || "";
}

/** The heading of species group `g` ({label, name, total, shown}) and, when more remain, a button to `more()`. */
export function groupHeading(g, cardsShown, more) {
  const name = g.name && g.name !== g.label ? `${g.name} (${g.label})` : g.label;
  const h = el("h3", { text: `${name} · ${cardsShown} of ${g.total} shown` });
  if (cardsShown < g.total) {
    const next = Math.min(g.pageSize, g.total - cardsShown);
    h.append(" ", el("button", { class: "more", "data-label": g.label, text: `show the next ${next}`, onclick: more }));
  }
  return h;
}

/** What the queue applies, in words: the model's thresholds (per species), a number, or none. */
export function minimumNote(data, choices) {
  const what = choices === "top" ? "each window's top choice" : "the model's top 3 choices of each window";
  if (data.min_score !== "model") return `Showing ${what} with a score of at least ${(+data.min_score).toFixed(2)}.`;
  if (!data.thresholds) return `Showing ${what}: this table has no model thresholds, so every detection it holds (set a minimum score to show fewer).`;
  const list = Object.entries(data.thresholds).map(([l, t]) => `${l} ${t.toFixed(2)}`).join(", ");
  return `Showing ${what} at or above the model's detection thresholds (${list}); set a minimum score to see others.`;
}
