// review_summary.js: the Review page's "Verified precision" box: per species, a table of detections,
// verdicts and precision per score bin, and the threshold that reaches the target precision.
import { el } from "./dom.js";

const HEADINGS = ["score", "det.", "verified", "correct", "precision", "≥ bin"];
const f2 = (v) => (v === null || v === undefined ? "–" : v.toFixed(2));

/** Fill `box` with `species` (GET /api/summary's list). */
export function renderSummary(box, species) {
  box.innerHTML = "";
  for (const sp of species) {
    const t = el("table", {}, el("tr", {}, ...HEADINGS.map((h) => el("th", { text: h }))));
    for (const b of sp.bins.filter((b) => b.detections)) {
      t.append(el("tr", {}, ...[b.bin, b.detections, b.verified, b.correct, f2(b.precision), f2(b.precision_above)].map((v) => el("td", { text: String(v) }))));
    }
    const sug = sp.suggested_threshold === null ? "not reached yet (verify more)" : `≥ ${sp.suggested_threshold.toFixed(1)}`;
    box.append(el("h4", { text: `${sp.label}: ${sp.verified} of ${sp.detections} verified` }), t,
      el("p", { class: "muted", text: `threshold for precision ${(+sp.target).toFixed(2)}: ${sug}` }));
  }
}
