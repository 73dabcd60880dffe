// timeline.js: the Analyze page's viewer of one prediction: spectrogram tiles fetched for the visible
// stretch only (drawn as spectro_view.js says: axis, colour range), the time ruler, one score track per
// species, the play cursor and seeking, and the boxes drawn on it (boxes.js). It works inside the Analyze
// section it is given; the zoom levels and tile width come from the server's settings.
import { apiUrl } from "./api.js";
import { Boxes } from "./boxes.js";
import { $, el, fmtTime, parseTime } from "./dom.js";
import { SpectroView } from "./spectro_view.js";

const RULER_STEPS_S = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600];

export class Timeline {
  /** `root`: the Analyze section; `settings`: GET /api/config; `onError(text)`: shows a message. */
  constructor(root, settings, onError) {
    this.root = root;
    this.levelsS = settings.levels_s;
    this.tileWidthPx = settings.tile_width_px;
    this.onError = onError;
    this.pred = null; this.duration = 0; this.level = 2; this.pps = 0; this.audioRef = null;
    this.tilesShown = new Map();
    const zoom = this.q("#zoom");
    zoom.innerHTML = "";
    this.levelsS.forEach((s, i) => zoom.append(el("option", { value: i, text: s >= 60 ? `${s / 60} min per tile` : `${s} s per tile` })));
    zoom.value = this.level;
    this.view = new SpectroView(root, settings.colormap, () => this.redraw());
    this.boxes = new Boxes(root, this.view, this, onError);
  }

  q(sel) { return $(sel, this.root); }

  /** Listen to the viewer's controls until `signal` fires (the page is left). */
  attach(signal) {
    const on = (sel, type, fn) => this.q(sel).addEventListener(type, fn, { signal });
    this.signal = signal;
    this.view.attach(signal);
    this.boxes.attach(signal);
    on("#tiles", "mousemove", (e) => this.view.readout(e, this.pps, this.q("#tiles").getBoundingClientRect()));
    on("#tiles", "mouseleave", () => { this.q("#pointer-readout").textContent = "—"; });
    on("#zoom", "change", () => this.setLevel(+this.q("#zoom").value));
    on("#zoom-in", "click", () => this.zoomBy(-1));
    on("#zoom-out", "click", () => this.zoomBy(1));
    on("#scroller", "scroll", () => this.renderVisible());
    on("#inner", "click", (e) => this.clickPlay(e));
    on("#min-score", "input", () => { this.q("#min-model").checked = false; this.minChanged(); });
    on("#min-model", "change", () => this.minChanged());
    on("#species-filter", "input", () => this.renderTracks());
    on("#goto", "change", () => { const t = parseTime(this.q("#goto").value); if (t !== null) this.goTo(t, 0.0); });
    on("#play", "click", () => this.togglePlay());
    on("#player", "play", () => { this.q("#play").textContent = "⏸ Pause"; this.animate(); });
    on("#player", "pause", () => { this.q("#play").textContent = "▶ Play"; });
    on("#player", "timeupdate", () => this.moveCursor());
    window.addEventListener("resize", () => this.renderVisible(), { signal });
    this.q("#play").textContent = this.q("#player").paused ? "▶ Play" : "⏸ Pause";
  }

  /** Stop playing (the cursor animation ends with it). */
  stop() { this.q("#player").pause(); }

  get hasPrediction() { return this.pred !== null; }

  /** Show prediction `pred` (GET /api/prediction) of recording `rec` (GET /api/recording); the viewer is visible. */
  show(pred, rec) {
    this.pred = pred; this.duration = rec.duration_s; this.audioRef = pred.meta.recording;
    this.q("#min-model").checked = Boolean(this.thresholds);  // the model's thresholds first, when it has them
    this.q("#min-model").disabled = !this.thresholds;
    this.minChanged();
    this.q("#player").src = apiUrl("/audio", { ref: this.audioRef });
    this.level = rec.initial_level;
    this.q("#zoom").value = this.level;
    this.layout();
    this.q("#scroller").scrollLeft = 0;
    this.renderTracks();
    this.view.load(this.audioRef, this.signal).catch((err) => this.onError(err.message));  // then the tiles
    this.boxes.load(this.audioRef, pred.ref, this.signal);
  }

  /** The display changed (axis, brightness, contrast): draw the visible tiles again, and the boxes. */
  redraw() {
    this.q("#tiles").innerHTML = "";
    this.tilesShown.clear();
    this.renderVisible();
    this.boxes.render();
  }

  layout() {
    this.pps = this.tileWidthPx / this.levelsS[this.level];
    const inner = this.q("#inner");
    inner.style.width = Math.ceil(this.duration * this.pps) + "px";
    inner.dataset.pps = String(this.pps);  // pixels per second, for tests and styles
    this.q("#tiles").innerHTML = "";
    this.tilesShown.clear();
    this.boxes.render();
  }

  zoomBy(step) { this.setLevel(this.level + step); }

  setLevel(level) {
    const sc = this.q("#scroller");
    this.goTo((sc.scrollLeft + sc.clientWidth / 2) / this.pps, 0.5, level);
  }

  // show time t at fraction `where` of the view, at zoom `level` (tiles are requested once, for the new view only)
  goTo(t, where, level = this.level) {
    level = Math.max(0, Math.min(this.levelsS.length - 1, level));
    if (!this.pred) return;
    if (level !== this.level) {
      this.level = level; this.q("#zoom").value = level;
      this.layout();
      this.renderTracks();
    }
    this.scrollTo(t, where);
  }

  scrollTo(t, where) {
    const sc = this.q("#scroller");
    sc.scrollLeft = Math.max(0, t * this.pps - where * sc.clientWidth);
    this.renderVisible();  // now, not on the scroll event: the tiles are asked for at once
  }

  renderVisible() {
    if (!this.pred || !this.view.display) return;  // the display settings come first
    const sc = this.q("#scroller"), W = this.tileWidthPx, levelS = this.levelsS[this.level], level = this.level;
    const lastTile = Math.ceil(this.duration / levelS) - 1;
    const first = Math.max(0, Math.floor(sc.scrollLeft / W)), last = Math.min(lastTile, Math.floor((sc.scrollLeft + sc.clientWidth) / W));
    const wanted = new Set();
    const visible = [];
    for (let i = first; i <= last; i++) visible.push(this.showTile(i, wanted));
    // one tile either side once the visible ones are in: scrolling a little never shows a gap
    Promise.all(visible).then(() => {
      const now = Math.floor(sc.scrollLeft / W), span = Math.ceil(sc.clientWidth / W);
      if (this.level !== level || Math.abs(now - first) > 1) return;  // the view moved on meanwhile
      for (const i of [first - 1, last + 1]) if (i >= 0 && i <= lastTile && i >= now - 1 && i <= now + span + 1) this.showTile(i, wanted);
    });
    for (const i of [first - 1, last + 1]) wanted.add(`${level}:${i}`);
    for (const [key, img] of this.tilesShown) if (!wanted.has(key)) { img.remove(); this.tilesShown.delete(key); }
    this.renderRuler(Math.max(0, first - 1) * levelS, (last + 2) * levelS);
  }

  showTile(i, wanted) {
    const key = `${this.level}:${i}`, W = this.tileWidthPx, levelS = this.levelsS[this.level];
    wanted.add(key);
    const have = this.tilesShown.get(key);
    if (have) return have.dataset.loaded ? Promise.resolve() : new Promise((res) => { have.addEventListener("load", res); have.addEventListener("error", res); });
    const img = el("img", { alt: "", "data-level": this.level, "data-index": i, style: `left:${i * W}px`, draggable: "false" });
    const done = new Promise((res) => {
      img.addEventListener("load", () => { img.dataset.loaded = "1"; res(); });
      img.addEventListener("error", () => { this.onError(`a spectrogram tile could not be drawn (${levelS * i} s); is the recording still there?`); res(); });
    });
    img.src = apiUrl("/tile", { ref: this.audioRef, level: this.level, index: i, ...this.view.tileParams() });
    this.q("#tiles").append(img);
    this.tilesShown.set(key, img);
    return done;
  }

  renderRuler(t0, t1) {
    const ruler = this.q("#ruler");
    ruler.innerHTML = "";
    const step = RULER_STEPS_S.find((s) => s * this.pps >= 70) || 600;
    for (let t = Math.ceil(t0 / step) * step; t <= Math.min(t1, this.duration); t += step) {
      ruler.append(el("div", { class: "tick", style: `left:${t * this.pps}px` }, el("span", { text: fmtTime(t).replace(/\.0$/, "") })));
    }
  }

  /** The minimum score in force: "model" (each species' threshold of the model) or the slider's number. */
  get minScore() { return this.q("#min-model").checked && this.thresholds ? "model" : +this.q("#min-score").value; }

  get thresholds() { return (this.pred && this.pred.meta.thresholds) || null; }

  /** The least score of species `label` that is drawn (and downloaded). */
  minimumFor(label) {
    const m = this.minScore;
    return m === "model" ? (this.thresholds[label] ?? 0) : m;
  }

  minChanged() {
    const m = this.minScore;
    this.q("#min-score-value").textContent = m === "model" ? "model's" : m.toFixed(2);
    this.renderTracks();
    if (this.onMinChange) this.onMinChange(m);
  }

  species() {
    const filt = this.q("#species-filter").value.trim().toLowerCase();
    const info = Object.fromEntries(this.pred.meta.class_info.map((c) => [c.label, c]));
    return Object.entries(this.pred.scores)
      .map(([label, s]) => ({ label, s, max: Math.max(...s), info: info[label] || {} }))
      .filter((x) => x.max >= this.minimumFor(x.label) && (!filt || x.label.toLowerCase().includes(filt) || (x.info.common_name || "").toLowerCase().includes(filt)))
      .sort((a, b) => b.max - a.max);
  }

  renderTracks() {
    if (!this.pred) return;
    const tracks = this.q("#tracks"), labels = this.q("#track-labels");
    tracks.innerHTML = ""; labels.innerHTML = "";
    const { start_s, end_s } = this.pred;
    for (const sp of this.species()) {
      const min = this.minimumFor(sp.label);
      labels.append(el("div", { class: "track-label", title: sp.info.scientific_name || sp.label, text: sp.info.common_name || sp.label }));
      const row = el("div", { class: "track", "data-label": sp.label });
      sp.s.forEach((v, i) => {
        if (v < min) return;
        const w = (end_s[i] - start_s[i]) * this.pps;
        row.append(el("div", { class: "box", style: `left:${start_s[i] * this.pps}px;width:${w}px;opacity:${(0.25 + 0.75 * v).toFixed(2)}`,
          title: `${sp.info.common_name || sp.label} ${v.toFixed(2)} at ${fmtTime(start_s[i])}`, text: w > 28 ? v.toFixed(2) : "" }));
      });
      tracks.append(row);
    }
    if (!tracks.children.length) labels.append(el("div", { class: "track-label muted", text: "no species at this minimum score" }));
  }

  clickPlay(e) {
    if (!this.pred || this.boxes.justDragged || e.target.closest(".sel-box")) return;
    const t = (e.clientX - this.q("#inner").getBoundingClientRect().left) / this.pps;
    const player = this.q("#player");
    player.currentTime = Math.max(0, Math.min(t, this.duration));
    this.moveCursor();
    player.play().catch((err) => this.onError(`cannot play: ${err.message}`));
  }

  togglePlay() {
    const p = this.q("#player");
    if (p.paused) p.play().catch((err) => this.onError(`cannot play: ${err.message}`)); else p.pause();
  }

  moveCursor() {
    const player = this.q("#player"), t = player.currentTime, x = t * this.pps, sc = this.q("#scroller");
    this.q("#cursor").style.left = x + "px";
    this.q("#time-readout").textContent = fmtTime(t);
    if (!player.paused && (x < sc.scrollLeft || x > sc.scrollLeft + sc.clientWidth * 0.9)) this.scrollTo(t, 0.1);
  }

  animate() {
    const step = () => { this.moveCursor(); if (!this.q("#player").paused) requestAnimationFrame(step); };
    requestAnimationFrame(step);
  }
}
