// review_summary.js: the Review page's "Verified precision" box: per species, a table of detections, verdicts
// and precision per score bin, the precision above each bin with its lower confidence bound, and the threshold
// whose lower bound reaches the target (from enough verdicts; else how far it is).
import { el } from "./dom.js";

const HEADINGS = ["score", "det.", "verified", "correct", "precision", "≥ bin", "lower bound"];
const f2 = (v) => (v === null || v === undefined ? "–" : v.toFixed(2));

function suggestion(sp) {
  const target = (+sp.target).toFixed(2), conf = Math.round(sp.confidence * 100);
  if (sp.suggested_threshold !== null) {
    return `threshold for precision ≥ ${target} (${conf} % lower bound): ≥ ${sp.suggested_threshold.toFixed(1)}`;
  }
  if (sp.verified < sp.min_verdicts) {
    return `no threshold suggested from ${sp.verified} verdict${sp.verified === 1 ? "" : "s"}: verify at least ${sp.min_verdicts} (a random sample per score bin is best)`;
  }
  return `no threshold reaches precision ${target} with ${conf} % confidence yet: verify more, or lower the target`;
}

/** Fill `box` with `species` (GET /api/summary's list). */
export function renderSummary(box, species) {
  box.innerHTML = "";
  for (const sp of species) {
    const t = el("table", {}, el("tr", {}, ...HEADINGS.map((h) => el("th", { text: h }))));
    for (const b of sp.bins.filter((b) => b.detections)) {
      t.append(el("tr", {}, ...[b.bin, b.detections, b.verified, b.correct, f2(b.precision), f2(b.precision_above), f2(b.lower_above)]
        .map((v) => el("td", { text: String(v) }))));
    }
    box.append(el("h4", { text: `${sp.label}: ${sp.verified} of ${sp.detections} verified` }), t,
      el("p", { class: "muted suggestion", text: suggestion(sp) }));
  }
}
