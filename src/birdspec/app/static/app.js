// birdspec serve: the front end (plain JavaScript, no build step, no external assets).
"use strict";

const $ = (sel, el = document) => el.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
};
const q = (params) => new URLSearchParams(params).toString();

async function api(path, opts = {}) {
  const r = await fetch("/api" + path, opts);
  const ct = r.headers.get("content-type") || "";
  const body = ct.includes("json") ? await r.json() : await r.text();
  if (!r.ok) {
    const msg = (body && (body.error || (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)))) || r.statusText;
    throw new Error(msg);
  }
  return body;
}
const post = (path, data) => api(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(data) });

function say(id, text, kind = "error") {
  const m = $("#" + id);
  m.textContent = text || "";
  m.className = "msg " + (text ? kind : "");
}
const fmtTime = (s) => {
  const m = Math.floor(s / 60), r = s - 60 * m;
  return `${m}:${r < 10 ? "0" : ""}${r.toFixed(1)}`;
};
const parseTime = (t) => {
  const parts = String(t).trim().split(":").map(Number);
  if (parts.some(isNaN)) return null;
  return parts.reduce((acc, v) => acc * 60 + v, 0);
};

async function pollJob(job, onUpdate) {
  for (;;) {
    job = await api("/jobs/" + job.id);
    onUpdate(job);
    if (job.status === "done" || job.status === "failed") return job;
    await new Promise((res) => setTimeout(res, 300));
  }
}

// ------------------------------------------------------------------ pages
const pages = ["analyze", "review", "train", "runs"];
function showPage() {
  const name = (location.hash || "#analyze").slice(1).split("?")[0];
  const page = pages.includes(name) ? name : "analyze";
  for (const p of pages) $("#page-" + p).hidden = p !== page;
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === page));
  if (page === "review") Review.refreshList();
  if (page === "train") Train.refresh();
  if (page === "runs") Runs.refresh();
}
window.addEventListener("hashchange", showPage);

let CONFIG = null;

// ------------------------------------------------------------------ Analyze
const Analyze = {
  pred: null, duration: 0, level: 2, pps: 0, audioRef: null, tilesShown: new Map(), following: true,

  async init() {
    CONFIG = await api("/config");
    const z = $("#zoom");
    CONFIG.levels_s.forEach((s, i) => z.append(el("option", { value: i, text: s >= 60 ? `${s / 60} min per tile` : `${s} s per tile` })));
    z.value = this.level;
    z.addEventListener("change", () => this.setLevel(+z.value));
    $("#zoom-in").addEventListener("click", () => this.setLevel(this.level - 1));
    $("#zoom-out").addEventListener("click", () => this.setLevel(this.level + 1));
    $("#predict").addEventListener("click", () => this.predict());
    $("#upload").addEventListener("change", (e) => this.upload(e.target.files[0]));
    $("#open-prediction").addEventListener("change", (e) => e.target.value && this.open(e.target.value));
    $("#scroller").addEventListener("scroll", () => this.renderVisible());
    $("#inner").addEventListener("click", (e) => this.clickPlay(e));
    $("#min-score").addEventListener("input", () => { $("#min-score-value").textContent = (+$("#min-score").value).toFixed(2); this.renderTracks(); });
    $("#species-filter").addEventListener("input", () => this.renderTracks());
    $("#goto").addEventListener("change", () => { const t = parseTime($("#goto").value); if (t !== null) this.goTo(t, 0.0); });
    $("#play").addEventListener("click", () => this.togglePlay());
    const player = $("#player");
    player.addEventListener("play", () => { $("#play").textContent = "⏸ Pause"; this.following = true; this.animate(); });
    player.addEventListener("pause", () => { $("#play").textContent = "▶ Play"; });
    player.addEventListener("timeupdate", () => this.moveCursor());
    window.addEventListener("resize", () => this.renderVisible());
    document.addEventListener("keydown", (e) => {
      if ($("#page-analyze").hidden || e.target.matches("input, select, textarea") || !this.pred) return;
      if (e.key === " ") { e.preventDefault(); this.togglePlay(); }
      if (e.key === "+" || e.key === "=") this.setLevel(this.level - 1);
      if (e.key === "-") this.setLevel(this.level + 1);
    });
    const ticks = $("#freq-axis");
    for (const t of CONFIG.freq_ticks) ticks.append(el("span", { style: `bottom:${(t.fraction * 100).toFixed(1)}%`, text: `${t.khz} kHz` }));
    await this.refreshLists();
  },

  async refreshLists() {
    try {
      const [recs, ckpts, preds] = await Promise.all([api("/recordings"), api("/checkpoints"), api("/predictions")]);
      const rs = $("#recording"), keep = rs.value;
      rs.innerHTML = "";
      for (const f of recs.folders) {
        const g = el("optgroup", { label: `${f.key} (${f.path})` });
        for (const ref of f.files) g.append(el("option", { value: ref, text: ref.split("/").slice(1).join("/") }));
        if (f.files.length) rs.append(g);
      }
      if (keep) rs.value = keep;
      const cs = $("#checkpoint"), keepC = cs.value;
      cs.innerHTML = "";
      for (const c of ckpts.checkpoints) {
        const text = c.error ? `${c.name} (damaged)` : `${c.name}${c.model ? " · " + c.model : ""}${c.classes ? " · " + c.classes.length + " classes" : ""}`;
        cs.append(el("option", { value: c.ref, text }));
      }
      if (keepC) cs.value = keepC;
      if (!ckpts.checkpoints.length) say("analyze-msg", `No checkpoints under ${CONFIG.folders.runs}: train one (birdspec train) or start birdspec serve with --runs DIR.`);
      const op = $("#open-prediction");
      op.innerHTML = '<option value="">an earlier prediction…</option>';
      for (const p of preds.predictions.filter((p) => p.recording)) op.append(el("option", { value: p.ref, text: p.name }));
    } catch (err) { say("analyze-msg", err.message); }
  },

  async upload(file) {
    if (!file) return;
    say("analyze-msg", `uploading ${file.name}…`, "ok");
    if (file.size > CONFIG.max_upload_mb * 1048576) {
      say("analyze-msg", `${file.name}: the upload is larger than the limit of ${CONFIG.max_upload_mb} MB; put the file in a served recordings folder instead`);
      return;
    }
    try {
      const r = await api("/upload?" + q({ name: file.name }), { method: "POST", body: file });
      await this.refreshLists();
      $("#recording").value = r.ref;
      say("analyze-msg", `uploaded ${file.name} (${fmtTime(r.duration_s)})`, "ok");
    } catch (err) { say("analyze-msg", err.message); }
    $("#upload").value = "";
  },

  async predict() {
    const recording = $("#recording").value, checkpoint = $("#checkpoint").value;
    if (!recording || !checkpoint) { say("analyze-msg", "pick a recording and a checkpoint first"); return; }
    say("analyze-msg", "");
    $("#predict").disabled = true;
    $("#progress-box").hidden = false;
    try {
      let job = await post("/predict", { recording, checkpoint });
      job = await pollJob(job, (j) => { $("#progress").value = j.progress; $("#progress-text").textContent = `${Math.round(j.progress * 100)} % ${j.message}`; });
      if (job.status === "failed") throw new Error(job.message);
      $("#progress-text").textContent = `done in ${job.elapsed_s.toFixed(1)} s`;
      await this.open(job.result.prediction);
      this.refreshLists();
    } catch (err) { say("analyze-msg", err.message); $("#progress-box").hidden = true; }
    $("#predict").disabled = false;
  },

  async open(ref) {
    try {
      const pred = await api("/prediction?" + q({ ref }));
      const rec = await api("/recording?" + q({ ref: pred.meta.recording }));
      this.pred = pred; this.duration = rec.duration_s; this.audioRef = pred.meta.recording;
      $("#viewer").hidden = false;
      $("#rec-title").textContent = `${pred.meta.recording} · ${pred.meta.checkpoint} · ${fmtTime(rec.duration_s)}`;
      $("#player").src = "/api/audio?" + q({ ref: this.audioRef });
      $("#dl-csv").href = "/api/download?" + q({ ref, format: "csv" });
      $("#dl-raven").href = "/api/download?" + q({ ref, format: "raven" });
      $("#dl-raven").hidden = !pred.raven;
      const dl = $("#species-names");
      dl.innerHTML = "";
      for (const c of pred.meta.class_info) dl.append(el("option", { value: c.label, text: c.common_name || c.label }));
      Review.lastPrediction = ref;
      this.level = rec.initial_level;
      $("#zoom").value = this.level;
      this.layout();
      $("#scroller").scrollLeft = 0;
      this.renderTracks();
      this.renderVisible();
    } catch (err) { say("analyze-msg", err.message); }
  },

  layout() {
    this.pps = CONFIG.tile_width_px / CONFIG.levels_s[this.level];
    $("#inner").style.width = Math.ceil(this.duration * this.pps) + "px";
    $("#tiles").innerHTML = "";
    this.tilesShown.clear();
  },

  setLevel(level) {
    const sc = $("#scroller");
    this.goTo((sc.scrollLeft + sc.clientWidth / 2) / this.pps, 0.5, level);
  },

  // show time t at fraction `where` of the view, at zoom `level` (tiles are requested once, for the new view only)
  goTo(t, where, level = this.level) {
    level = Math.max(0, Math.min(CONFIG.levels_s.length - 1, level));
    if (!this.pred) return;
    if (level !== this.level) {
      this.level = level; $("#zoom").value = level;
      this.layout();
      this.renderTracks();
    }
    this.scrollTo(t, where);
  },

  scrollTo(t, where) {
    const sc = $("#scroller");
    sc.scrollLeft = Math.max(0, t * this.pps - where * sc.clientWidth);
    this.renderVisible();  // now, not on the scroll event: the tiles are asked for at once
  },

  renderVisible() {
    if (!this.pred) return;
    const sc = $("#scroller"), W = CONFIG.tile_width_px, levelS = CONFIG.levels_s[this.level];
    const lastTile = Math.ceil(this.duration / levelS) - 1;
    const first = Math.max(0, Math.floor(sc.scrollLeft / W)), last = Math.min(lastTile, Math.floor((sc.scrollLeft + sc.clientWidth) / W));
    const wanted = new Set();
    const visible = [];
    for (let i = first; i <= last; i++) visible.push(this.showTile(i, wanted));
    // one tile either side once the visible ones are in: scrolling a little never shows a gap
    Promise.all(visible).then(() => {
      const now = Math.floor(sc.scrollLeft / W), span = Math.ceil(sc.clientWidth / W);
      if (this.level !== +$("#zoom").value || Math.abs(now - first) > 1) return;  // the view moved on meanwhile
      for (const i of [first - 1, last + 1]) if (i >= 0 && i <= lastTile && i >= now - 1 && i <= now + span + 1) this.showTile(i, wanted);
    });
    for (const i of [first - 1, last + 1]) wanted.add(`${this.level}:${i}`);
    for (const [key, img] of this.tilesShown) if (!wanted.has(key)) { img.remove(); this.tilesShown.delete(key); }
    this.renderRuler(Math.max(0, first - 1) * levelS, (last + 2) * levelS);
  },

  showTile(i, wanted) {
    const key = `${this.level}:${i}`, W = CONFIG.tile_width_px, levelS = CONFIG.levels_s[this.level];
    wanted.add(key);
    const have = this.tilesShown.get(key);
    if (have) return have.dataset.loaded ? Promise.resolve() : new Promise((res) => { have.addEventListener("load", res); have.addEventListener("error", res); });
    const img = el("img", { alt: "", "data-level": this.level, "data-index": i, style: `left:${i * W}px`, draggable: "false" });
    const done = new Promise((res) => {
      img.addEventListener("load", () => { img.dataset.loaded = "1"; res(); });
      img.addEventListener("error", () => { say("analyze-msg", `a spectrogram tile could not be drawn (${levelS * i} s); is the recording still there?`); res(); });
    });
    img.src = "/api/tile?" + q({ ref: this.audioRef, level: this.level, index: i });
    $("#tiles").append(img);
    this.tilesShown.set(key, img);
    return done;
  },

  renderRuler(t0, t1) {
    const ruler = $("#ruler");
    ruler.innerHTML = "";
    const steps = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600];
    const step = steps.find((s) => s * this.pps >= 70) || 600;
    for (let t = Math.ceil(t0 / step) * step; t <= Math.min(t1, this.duration); t += step) {
      ruler.append(el("div", { class: "tick", style: `left:${t * this.pps}px` }, el("span", { text: fmtTime(t).replace(/\.0$/, "") })));
    }
  },

  species() {
    const min = +$("#min-score").value, filt = $("#species-filter").value.trim().toLowerCase();
    const info = Object.fromEntries(this.pred.meta.class_info.map((c) => [c.label, c]));
    return Object.entries(this.pred.scores)
      .map(([label, s]) => ({ label, s, max: Math.max(...s), info: info[label] || {} }))
      .filter((x) => x.max >= min && (!filt || x.label.toLowerCase().includes(filt) || (x.info.common_name || "").toLowerCase().includes(filt)))
      .sort((a, b) => b.max - a.max);
  },

  renderTracks() {
    if (!this.pred) return;
    const min = +$("#min-score").value, tracks = $("#tracks"), labels = $("#track-labels");
    tracks.innerHTML = ""; labels.innerHTML = "";
    const { start_s, end_s } = this.pred;
    for (const sp of this.species()) {
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
  },

  clickPlay(e) {
    if (!this.pred) return;
    const t = (e.clientX - $("#inner").getBoundingClientRect().left) / this.pps;
    const player = $("#player");
    player.currentTime = Math.max(0, Math.min(t, this.duration));
    this.following = false;
    this.moveCursor();
    player.play().catch((err) => say("analyze-msg", `cannot play: ${err.message}`));
  },

  togglePlay() { const p = $("#player"); if (p.paused) p.play().catch((err) => say("analyze-msg", `cannot play: ${err.message}`)); else p.pause(); },

  moveCursor() {
    const t = $("#player").currentTime, x = t * this.pps, sc = $("#scroller");
    $("#cursor").style.left = x + "px";
    $("#time-readout").textContent = fmtTime(t);
    if (!$("#player").paused && (x < sc.scrollLeft || x > sc.scrollLeft + sc.clientWidth * 0.9)) this.scrollTo(t, 0.1);
  },

  animate() {
    const step = () => { this.moveCursor(); if (!$("#player").paused) requestAnimationFrame(step); };
    requestAnimationFrame(step);
  },
};

// ------------------------------------------------------------------ Review
const Review = {
  cards: [], current: -1, lastPrediction: null, ref: null,

  init() {
    $("#review-load").addEventListener("click", () => this.load());
    $("#review-prediction").addEventListener("change", () => this.load());
    $("#review-mode").addEventListener("change", () => this.load());
    $("#review-filter").addEventListener("change", () => this.render());
    $("#target").addEventListener("change", () => this.summary());
    $("#export").addEventListener("click", () => this.export());
    document.addEventListener("keydown", (e) => this.key(e));
  },

  async refreshList() {
    try {
      const { predictions } = await api("/predictions");
      const s = $("#review-prediction"), keep = s.value || this.lastPrediction;
      s.innerHTML = "";
      for (const p of predictions) s.append(el("option", { value: p.ref, text: p.name }));
      if (keep && predictions.some((p) => p.ref === keep)) s.value = keep;
      if (!predictions.length) say("review-msg", "No predictions yet: analyze a recording first (or serve a folder holding `birdspec predict` CSV or Parquet tables).");
      else if (s.value !== this.ref) await this.load();
    } catch (err) { say("review-msg", err.message); }
  },

  async load() {
    const ref = $("#review-prediction").value;
    if (!ref) return;
    say("review-msg", "");
    try {
      const data = await api("/review?" + q({ prediction: ref, mode: $("#review-mode").value, per_bin: $("#per-bin").value }));
      this.ref = ref; this.data = data; this.current = -1;
      const dl = $("#review-species");
      dl.innerHTML = "";
      for (const c of data.classes) dl.append(el("option", { value: c.label, text: c.common_name || c.label }));
      this.render();
      this.summary();
    } catch (err) { say("review-msg", err.message); }
  },

  render() {
    const box = $("#cards"), filt = $("#review-filter").value.trim().toLowerCase();
    box.innerHTML = "";
    this.cards = [];
    const groups = new Map();
    for (const c of this.data.cards) {
      if (filt && !c.label.toLowerCase().includes(filt) && !(c.common_name || "").toLowerCase().includes(filt)) continue;
      if (!groups.has(c.label)) groups.set(c.label, []);
      groups.get(c.label).push(c);
    }
    for (const [label, cards] of groups) {
      const row = el("div", { class: "cardrow" });
      box.append(el("div", { class: "group" }, el("h3", { text: `${cards[0].common_name || label} (${label}) · ${cards.length} shown` }), row));
      for (const c of cards) { const node = this.card(c, this.cards.length); row.append(node); this.cards.push({ c, node }); }
    }
    if (!this.cards.length) box.append(el("p", { class: "muted", text: "No detections to show." }));
    else this.focus(0, false);
  },

  card(c, i) {
    const node = el("div", { class: "card", "data-key": c.key, tabindex: "-1" });
    const img = c.audio ? el("img", { loading: "lazy", alt: "spectrogram", src: "/api/spectrogram?" + q({ ref: c.audio, start_s: c.start_s, duration_s: c.end_s - c.start_s, width_px: 320 }) })
      : el("div", { class: "muted", text: "recording not in the served folders" });
    const species = el("input", { list: "review-species", placeholder: "other species", class: "other-species" });
    species.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); this.give(i, "other", species.value); species.blur(); } e.stopPropagation(); });
    node.append(
      img,
      el("div", { class: "meta" }, el("span", { text: `${fmtTime(c.start_s)}–${fmtTime(c.end_s)} · ${c.file.split("/").pop()}` }), el("strong", { text: c.confidence.toFixed(2) })),
      el("div", { class: "top", text: "top 3: " + c.top.map(([l, s]) => `${l} ${s.toFixed(2)}`).join(", ") }),
      el("div", { class: "actions" },
        el("button", { text: "▶", title: "play (space)", onclick: () => this.play(i) }),
        el("button", { text: "correct (c)", onclick: () => this.give(i, "correct") }),
        el("button", { text: "wrong (x)", onclick: () => this.give(i, "wrong") }),
        species,
        el("span", { class: "verdict" })));
    node.addEventListener("click", () => this.focus(i, false));
    this.paint(node, c);
    return node;
  },

  paint(node, c) {
    node.classList.remove("v-correct", "v-wrong", "v-other");
    if (c.verdict) node.classList.add("v-" + c.verdict);
    $(".verdict", node).textContent = c.verdict === "other" ? `other: ${c.species}` : c.verdict || "";
  },

  focus(i, scroll = true) {
    if (!this.cards.length) return;
    i = Math.max(0, Math.min(this.cards.length - 1, i));
    if (this.current >= 0 && this.cards[this.current]) this.cards[this.current].node.classList.remove("current");
    this.current = i;
    const node = this.cards[i].node;
    node.classList.add("current");
    if (scroll) node.scrollIntoView({ block: "nearest" });
  },

  play(i) {
    const { c } = this.cards[i];
    if (!c.audio) return;
    if (this.audio) this.audio.pause();
    this.audio = new Audio("/api/clip?" + q({ ref: c.audio, start_s: c.start_s, end_s: c.end_s }));
    this.audio.play().catch((err) => say("review-msg", `cannot play: ${err.message}`));
  },

  async give(i, verdict, species = "") {
    const { c, node } = this.cards[i];
    try {
      await post("/verdict", { prediction: this.ref, verdict, species,
        detection: { file: c.file, start_s: c.start_s, end_s: c.end_s, label: c.label, confidence: c.confidence } });
      c.verdict = verdict === "clear" ? "" : verdict; c.species = verdict === "other" ? species : verdict === "correct" ? c.label : "";
      this.paint(node, c);
      say("review-msg", "");
      if (verdict !== "clear") this.focus(i + 1);
      this.summary();
    } catch (err) { say("review-msg", err.message); }
  },

  key(e) {
    if ($("#page-review").hidden || e.target.matches("input, select, textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
    const i = this.current;
    if (i < 0) return;
    const actions = {
      j: () => this.focus(i + 1), ArrowDown: () => this.focus(i + 1), ArrowRight: () => this.focus(i + 1),
      k: () => this.focus(i - 1), ArrowUp: () => this.focus(i - 1), ArrowLeft: () => this.focus(i - 1),
      " ": () => this.play(i), c: () => this.give(i, "correct"), x: () => this.give(i, "wrong"),
      u: () => this.give(i, "clear"), o: () => $(".other-species", this.cards[i].node).focus(),
    };
    if (actions[e.key]) { e.preventDefault(); actions[e.key](); }
  },

  async summary() {
    if (!this.ref) return;
    try {
      const { species } = await api("/summary?" + q({ prediction: this.ref, target: $("#target").value }));
      const box = $("#summary");
      box.innerHTML = "";
      for (const sp of species) {
        const t = el("table", {}, el("tr", {}, ...["score", "det.", "verified", "correct", "precision", "≥ bin"].map((h) => el("th", { text: h }))));
        for (const b of sp.bins.filter((b) => b.detections)) {
          const f = (v) => (v === null || v === undefined ? "–" : v.toFixed(2));
          t.append(el("tr", {}, ...[b.bin, b.detections, b.verified, b.correct, f(b.precision), f(b.precision_above)].map((v) => el("td", { text: String(v) }))));
        }
        const sug = sp.suggested_threshold === null ? `not reached yet (verify more)` : `≥ ${sp.suggested_threshold.toFixed(1)}`;
        box.append(el("h4", { text: `${sp.label}: ${sp.verified} of ${sp.detections} verified` }), t,
          el("p", { class: "muted", text: `threshold for precision ${(+sp.target).toFixed(2)}: ${sug}` }));
      }
    } catch (err) { say("review-msg", err.message); }
  },

  async export() {
    if (!this.ref) return;
    try {
      const r = await post("/export", { prediction: this.ref });
      const box = $("#export-result");
      box.hidden = false;
      box.textContent = `Exported ${r.rows} verified windows (${Object.entries(r.labels).map(([k, v]) => `${k} ${v}`).join(", ")}) to ${r.path}. Prepare it with: ${r.command} — or use the Train page.`;
      box.dataset.path = r.path;
    } catch (err) { say("review-msg", err.message); }
  },
};

// ------------------------------------------------------------------ curves (Train and Runs)
function drawCurves(canvas, curves) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, pad = 36;
  ctx.clearRect(0, 0, W, H);
  const epochs = curves.epoch || [];
  if (!epochs.length) { ctx.fillText("no epochs yet", pad, H / 2); return; }
  const series = [["train_acc", "#1f6f5c"], ["val_acc", "#2c7be5"], ["train_loss", "#b07d00"], ["val_loss", "#b3261e"]].filter(([k]) => curves[k]);
  const maxLoss = Math.max(1, ...series.filter(([k]) => k.endsWith("loss")).flatMap(([k]) => curves[k].filter(Number.isFinite)));
  const x = (e) => pad + ((e - epochs[0]) / Math.max(1, epochs[epochs.length - 1] - epochs[0])) * (W - 2 * pad);
  ctx.strokeStyle = "#ccc"; ctx.strokeRect(pad, pad / 2, W - 2 * pad, H - pad * 1.5);
  ctx.fillStyle = "#333"; ctx.font = "11px sans-serif";
  ctx.fillText("epoch " + epochs[epochs.length - 1], W - pad - 50, H - 6);
  series.forEach(([k, colour], si) => {
    const scale = k.endsWith("loss") ? maxLoss : 1;
    const y = (v) => H - pad - (v / scale) * (H - pad * 1.5 - 4);
    ctx.strokeStyle = colour; ctx.beginPath();
    curves[k].forEach((v, i) => { if (Number.isFinite(v)) (i ? ctx.lineTo(x(epochs[i]), y(v)) : ctx.moveTo(x(epochs[i]), y(v))); });
    ctx.stroke();
    ctx.fillStyle = colour; ctx.fillText(`${k}${k.endsWith("loss") ? ` (/${maxLoss.toFixed(1)})` : ""}`, pad + 4 + si * 130, 12);
  });
}

// ------------------------------------------------------------------ Train
const Train = {
  init() { $("#train-start").addEventListener("click", () => this.start()); },
  async refresh() {
    try {
      const { manifests } = await api("/manifests");
      const s = $("#train-manifest"), keep = s.value;
      s.innerHTML = "";
      for (const m of manifests) s.append(el("option", { value: m, text: m }));
      if (keep) s.value = keep;
      if (!manifests.length) say("train-msg", "No exported manifest yet: verify detections in Review and press “Export verified as manifest”.", "ok");
    } catch (err) { say("train-msg", err.message); }
  },
  async start() {
    say("train-msg", "");
    $("#train-start").disabled = true;
    $("#train-progress").hidden = false;
    try {
      let job = await post("/train", { manifest: $("#train-manifest").value, model: $("#train-model").value,
        epochs: +$("#train-epochs").value, name: $("#train-name").value || undefined });
      let lastPoll = 0;
      job = await pollJob(job, async (j) => {
        $("#train-bar").value = j.progress; $("#train-text").textContent = j.message;
        if (j.result && j.result.run && Date.now() - lastPoll > 2000) {
          lastPoll = Date.now();
          try { const run = await api("/run?" + q({ ref: j.result.run })); $("#train-curves").hidden = false; drawCurves($("#train-curves"), run.curves); } catch (_) { /* not written yet */ }
        }
      });
      if (job.status === "failed") throw new Error(job.message);
      const run = await api("/run?" + q({ ref: job.result.run }));
      drawCurves($("#train-curves"), run.curves);
      say("train-msg", `trained ${job.result.run}; it is now in the checkpoint list of Analyze and in Runs`, "ok");
      Analyze.refreshLists();
    } catch (err) { say("train-msg", err.message); }
    $("#train-start").disabled = false;
  },
};

// ------------------------------------------------------------------ Runs
const Runs = {
  init() {
    $("#runs-refresh").addEventListener("click", () => this.refresh());
    $("#compare").addEventListener("click", () => this.compare());
  },
  async refresh() {
    try {
      const { runs } = await api("/runs");
      const ul = $("#runs-list");
      ul.innerHTML = "";
      for (const r of runs) ul.append(el("li", {}, el("input", { type: "checkbox", value: r }), " ", el("a", { text: r.replace(/^runs\//, ""), onclick: () => this.show(r) })));
      if (!runs.length) ul.append(el("li", { class: "muted", text: "no run folders yet" }));
    } catch (err) { say("runs-msg", err.message); }
  },
  async show(ref) {
    try {
      const run = await api("/run?" + q({ ref }));
      const d = $("#run-detail");
      d.innerHTML = "";
      d.append(el("h3", { text: ref }));
      const canvas = el("canvas", { width: 720, height: 240 });
      d.append(canvas);
      drawCurves(canvas, run.curves);
      const facts = { ...(run.summary || {}), ...Object.fromEntries(Object.entries((run.eval || {}).recording || {}).filter(([, v]) => typeof v === "number").map(([k, v]) => ["val " + k, v])) };
      const t = el("table");
      for (const [k, v] of Object.entries(facts)) if (typeof v !== "object") t.append(el("tr", {}, el("td", { text: k }), el("td", { text: typeof v === "number" ? (+v.toFixed(4)).toString() : String(v) })));
      d.append(t);
      for (const f of run.figures) d.append(el("img", { src: "/api/file?" + q({ ref: f }), alt: f }));
    } catch (err) { say("runs-msg", err.message); }
  },
  async compare() {
    const runs = [...document.querySelectorAll("#runs-list input:checked")].map((c) => c.value);
    say("runs-msg", runs.length ? "comparing… (evaluates each run)" : "select runs to compare first", runs.length ? "ok" : "error");
    if (!runs.length) return;
    try {
      let job = await post("/compare", { runs });
      job = await pollJob(job, (j) => say("runs-msg", j.message || "comparing…", "ok"));
      if (job.status === "failed") throw new Error(job.message);
      const url = "/api/file?" + q({ ref: job.result.report });
      $("#runs-msg").innerHTML = "";
      $("#runs-msg").append(el("a", { href: url, target: "_blank", text: "open the comparison report" }));
    } catch (err) { say("runs-msg", err.message); }
  },
};

window.addEventListener("DOMContentLoaded", async () => {
  Review.init(); Train.init(); Runs.init();
  try { await Analyze.init(); } catch (err) { say("analyze-msg", err.message); }
  showPage();
});
