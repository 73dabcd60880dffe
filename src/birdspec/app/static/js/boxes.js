// boxes.js: selection boxes on the Analyze spectrogram: drag on the tiles to draw one (time and frequency), pick
// it to play its time span, name its species (the model's classes or the species list, with completion) and
// save all of the recording's boxes (POST /api/boxes: a Raven selection table beside the recording). Boxes keep
// their seconds and hertz, so they follow zoom and the frequency axis.
import { apiUrl, get, isAbort, post } from "./api.js";
import { $, el, fillSelect, fmtTime } from "./dom.js";

const DRAG_MIN_PX = 4;

export class Boxes {
  /** `view`: the SpectroView (frequency <-> y); `timeline`: gives pps and the prediction; `onError(text)`. */
  constructor(root, view, timeline, onError) {
    this.root = root; this.view = view; this.timeline = timeline; this.onError = onError;
    this.items = []; this.selected = -1; this.drag = null; this.justDragged = false; this.dirty = false;
    this.recording = null; this.prediction = null; this.clip = null;
  }

  q(sel) { return $(sel, this.root); }

  attach(signal) {
    const on = (target, type, fn) => target.addEventListener(type, fn, { signal });
    on(this.q("#tiles"), "mousedown", (e) => this.start(e));
    on(window, "mousemove", (e) => this.move(e));
    on(window, "mouseup", (e) => this.end(e));
    on(this.q("#box-play"), "click", () => this.play());
    on(this.q("#box-save"), "click", () => this.save());
    on(this.q("#box-delete"), "click", () => this.remove());
    on(this.q("#box-species"), "change", () => this.name(this.q("#box-species").value));
    on(this.q("#box-species"), "keydown", (e) => { if (e.key === "Enter") { this.name(e.target.value); this.save(); } });
  }

  /** Boxes of `recording` (saved ones), labelled from the classes of `prediction` and the species list. */
  async load(recording, prediction, signal) {
    this.recording = recording; this.prediction = prediction; this.selected = -1; this.dirty = false;
    try {
      const r = await get("/boxes", { recording, prediction }, { signal });
      if (recording !== this.recording) return;
      this.items = r.boxes;
      fillSelect(this.q("#box-species-names"), r.species.map((s) => [s.label, s.common_name || s.scientific_name || s.label]), "");
      this.render();
    } catch (err) { if (!isAbort(err)) this.onError(err.message); }
  }

  point(e) {
    const box = this.q("#tiles").getBoundingClientRect(), pps = this.timeline.pps;
    const x = Math.max(0, Math.min(e.clientX - box.left, this.timeline.duration * pps)), y = Math.max(0, Math.min(e.clientY - box.top, box.height));
    return { x, y, t: x / pps, hz: this.view.yToHz(y) };
  }

  start(e) {
    if (e.button !== 0 || !this.view.display || !this.recording) return;
    this.drag = { from: this.point(e), to: null };
  }

  move(e) {
    if (!this.drag) return;
    this.drag.to = this.point(e);
    const { from, to } = this.drag;
    if (Math.abs(to.x - from.x) < DRAG_MIN_PX && Math.abs(to.y - from.y) < DRAG_MIN_PX) return;
    this.draft = { start_s: Math.min(from.t, to.t), end_s: Math.max(from.t, to.t), low_hz: Math.min(from.hz, to.hz),
      high_hz: Math.max(from.hz, to.hz), species: "", unsaved: true };
    this.render();
  }

  end() {
    if (!this.drag) return;
    const made = this.draft;
    this.drag = null; this.draft = null;
    if (!made) return;
    this.justDragged = true;  // the click that follows is not a "play from here"
    setTimeout(() => { this.justDragged = false; }, 0);
    this.items.push(made);
    this.dirty = true;
    this.select(this.items.length - 1);
    this.q("#box-species").focus();
  }

  render() {
    const layer = this.q("#boxes"), pps = this.timeline.pps;
    layer.innerHTML = "";
    if (!this.view.display) return;
    const all = this.draft ? [...this.items, this.draft] : this.items;
    all.forEach((b, i) => {
      const top = this.view.hzToY(b.high_hz), bottom = this.view.hzToY(b.low_hz);
      const node = el("div", { class: `sel-box${b.unsaved ? " unsaved" : ""}${i === this.selected ? " selected" : ""}`, "data-index": i,
        style: `left:${b.start_s * pps}px;width:${Math.max(2, (b.end_s - b.start_s) * pps)}px;top:${top}px;height:${Math.max(2, bottom - top)}px`,
        title: this.describe(b) }, el("span", { text: b.species || "?" }));
      node.addEventListener("mousedown", (e) => e.stopPropagation());
      node.addEventListener("click", (e) => { e.stopPropagation(); this.select(i); });
      layer.append(node);
    });
  }

  describe(b) {
    return `${fmtTime(b.start_s)}–${fmtTime(b.end_s)} · ${(b.low_hz / 1000).toFixed(2)}–${(b.high_hz / 1000).toFixed(2)} kHz${b.species ? " · " + b.species : ""}`;
  }

  select(i) {
    this.selected = i;
    const b = this.items[i], panel = this.q("#box-panel");
    panel.hidden = !b;
    if (b) {
      this.q("#box-extent").textContent = this.describe(b);
      this.q("#box-species").value = b.species || "";
      this.q("#box-msg").textContent = b.unsaved ? "not saved yet" : "";
    }
    this.render();
  }

  name(species) {
    const b = this.items[this.selected];
    if (!b) return;
    b.species = species.trim(); b.unsaved = true; this.dirty = true;
    this.select(this.selected);
  }

  play() {
    const b = this.items[this.selected];
    if (!b) return;
    if (this.clip) this.clip.pause();
    this.clip = new Audio(apiUrl("/clip", { ref: this.recording, start_s: b.start_s.toFixed(3), end_s: b.end_s.toFixed(3) }));
    this.clip.play().catch((err) => this.onError(`cannot play: ${err.message}`));
  }

  remove() {
    if (this.selected < 0) return;
    this.items.splice(this.selected, 1);
    this.dirty = true;
    this.select(-1);
    this.save();
  }

  async save() {
    const unnamed = this.items.findIndex((b) => !b.species);
    if (unnamed >= 0) { this.select(unnamed); this.q("#box-msg").textContent = "name the species of this box first"; return; }
    try {
      const r = await post("/boxes", { recording: this.recording, prediction: this.prediction,
        boxes: this.items.map(({ start_s, end_s, low_hz, high_hz, species }) => ({ start_s, end_s, low_hz, high_hz, species })) });
      const was = this.items[this.selected];
      this.items = r.boxes; this.dirty = false;
      this.select(was ? this.items.findIndex((b) => Math.abs(b.start_s - was.start_s) < 0.01 && Math.abs(b.end_s - was.end_s) < 0.01) : -1);
      this.q("#box-msg").textContent = r.boxes.length
        ? `saved ${r.boxes.length} box${r.boxes.length === 1 ? "" : "es"} to ${r.table || "the recording's box table"}` : "no boxes left";
    } catch (err) { this.q("#box-msg").textContent = ""; this.onError(err.message); }
  }
}
