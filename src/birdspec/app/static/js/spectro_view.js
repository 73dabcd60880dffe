// spectro_view.js: how the Analyze spectrogram is drawn and read: the frequency axis (mel or linear, up to the
// Nyquist frequency) and its ticks, the colour map's dB range (the recording's own, moved by brightness and
// contrast) with its colour bar, the tile parameters these give, and the pointer readout (time, frequency, dB:
// the dB read back from the tile's pixel through the colour map). Frequencies and y positions convert both ways
// for the boxes (boxes.js).
import { get, isAbort } from "./api.js";
import { $, el, fmtTime } from "./dom.js";

const TILE_HEIGHT_PX = 256;

const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));

export class SpectroView {
  /** `root`: the Analyze section; `colormap`: 256 "#rrggbb" (GET /api/config); `onChange()`: the tiles must be drawn again. */
  constructor(root, colormap, onChange) {
    this.root = root;
    this.colormap = colormap;
    this.lut = colormap.map(rgb);
    this.onChange = onChange;
    this.display = null;  // GET /api/display of the recording shown, on the axis chosen
    this.ref = null;
    this.pixels = new WeakMap();  // tile img -> its pixels (ImageData), read once for the readout
  }

  q(sel) { return $(sel, this.root); }

  attach(signal) {
    const on = (sel, type, fn) => this.q(sel).addEventListener(type, fn, { signal });
    on("#freq-scale", "change", () => this.load(this.ref, signal));
    on("#brightness", "input", () => this.colourChanged());
    on("#contrast", "input", () => this.colourChanged());
    on("#colour-reset", "click", () => { this.q("#brightness").value = "0"; this.q("#contrast").value = "1"; this.colourChanged(); });
  }

  get axis() { return this.q("#freq-scale").value; }

  /** Read the axis and colour scale of recording `ref`; draws the ticks and colour bar, then `onChange()`. */
  async load(ref, signal) {
    if (ref !== this.ref) this.display = null;  // nothing of another recording is drawn meanwhile
    this.ref = ref;
    try {
      const display = await get("/display", { ref, axis: this.axis }, { signal });
      if (ref !== this.ref) return;
      this.display = display;
      this.drawAxis();
      this.colourChanged();
    } catch (err) { if (!isAbort(err)) throw err; }
  }

  /** dB at the bottom and top of the colour map: the recording's, shifted by brightness and scaled by contrast. */
  get range() {
    const d = this.display, b = +this.q("#brightness").value, c = +this.q("#contrast").value;
    const mid = (d.floor_db + d.ceiling_db) / 2 - b, half = (d.ceiling_db - d.floor_db) / (2 * c);
    return [Math.round((mid - half) * 2) / 2, Math.round((mid + half) * 2) / 2];
  }

  get custom() { return +this.q("#brightness").value !== 0 || +this.q("#contrast").value !== 1; }

  /** The tile request's display parameters. */
  tileParams() {
    if (!this.display) return { axis: this.axis };
    const [floor, ceiling] = this.range;
    return this.custom ? { axis: this.axis, floor_db: floor, ceiling_db: ceiling } : { axis: this.axis };
  }

  colourChanged() {
    if (!this.display) return;
    this.drawColourBar();
    this.pixels = new WeakMap();
    this.onChange();
  }

  drawAxis() {
    const ticks = this.q("#freq-axis");
    ticks.innerHTML = "";
    for (const t of this.display.ticks) ticks.append(el("span", { style: `bottom:${(t.fraction * 100).toFixed(1)}%`, text: `${t.khz} kHz` }));
  }

  drawColourBar() {
    const canvas = this.q("#colour-bar"), ctx = canvas.getContext("2d");
    for (let y = 0; y < canvas.height; y++) {
      ctx.fillStyle = this.colormap[Math.round(255 * (1 - y / (canvas.height - 1)))];
      ctx.fillRect(0, y, canvas.width, 1);
    }
    const [floor, ceiling] = this.range, box = this.q("#colour-ticks");
    box.innerHTML = "";
    for (const f of [0, 0.25, 0.5, 0.75, 1]) {
      box.append(el("span", { style: `top:${((1 - f) * 100).toFixed(1)}%`, text: `${Math.round(floor + f * (ceiling - floor))} dB` }));
    }
    this.q(".colour-bar").title = `colour map: ${floor} dB (bottom) to ${ceiling} dB (top)`;
  }

  /** Frequency (Hz) at `y` pixels from the top of the tiles. */
  yToHz(y) {
    const rows = this.display.rows_hz, n = rows.length, r = (1 - y / TILE_HEIGHT_PX) * n - 0.5;
    const i = Math.max(0, Math.min(n - 2, Math.floor(r))), f = Math.max(0, Math.min(1, r - i));
    return Math.max(0, Math.min(this.display.nyquist_hz, rows[i] + f * (rows[i + 1] - rows[i])));
  }

  /** `y` pixels from the top of the tiles where frequency `hz` is. */
  hzToY(hz) {
    const rows = this.display.rows_hz, n = rows.length;
    let i = rows.findIndex((v) => v >= hz);
    if (i < 0) return 0;
    if (i === 0) return TILE_HEIGHT_PX * (1 - Math.max(0, 0.5 - (rows[0] - hz) / (rows[1] - rows[0])) / n);
    const r = i - 1 + (hz - rows[i - 1]) / (rows[i] - rows[i - 1]) + 0.5;
    return TILE_HEIGHT_PX * (1 - r / n);
  }

  /** dB under the pointer in tile `img` at (x, y) of its box, read through the colour map; null off the audio. */
  dbAt(img, x, y) {
    if (!img || !img.complete || !img.naturalWidth) return null;
    let data = this.pixels.get(img);
    if (!data) {
      const c = document.createElement("canvas");
      c.width = img.naturalWidth; c.height = img.naturalHeight;
      const ctx = c.getContext("2d", { willReadFrequently: true });
      ctx.drawImage(img, 0, 0);
      data = ctx.getImageData(0, 0, c.width, c.height);
      this.pixels.set(img, data);
    }
    const px = Math.floor((x / img.clientWidth) * data.width), py = Math.floor((y / img.clientHeight) * data.height);
    const k = 4 * (py * data.width + px), p = [data.data[k], data.data[k + 1], data.data[k + 2]];
    let best = 0, bestD = Infinity;
    this.lut.forEach((c, i) => { const d = (c[0] - p[0]) ** 2 + (c[1] - p[1]) ** 2 + (c[2] - p[2]) ** 2; if (d < bestD) { bestD = d; best = i; } });
    if (bestD > 300) return null;  // not a colour of the map: past the end of the audio
    const [floor, ceiling] = this.range;
    return floor + (best / 255) * (ceiling - floor);
  }

  /** Show time, frequency and dB under the pointer (`e` over the tiles; `pps`: pixels per second). */
  readout(e, pps, tilesBox) {
    if (!this.display) return;
    const x = e.clientX - tilesBox.left, y = e.clientY - tilesBox.top;
    const img = e.target instanceof HTMLImageElement ? e.target : null;
    const db = img ? this.dbAt(img, e.clientX - img.getBoundingClientRect().left, y) : null;
    const hz = this.yToHz(y);
    this.q("#pointer-readout").textContent = `${fmtTime(x / pps)} · ${(hz / 1000).toFixed(2)} kHz · ${db === null ? "–" : Math.round(db) + " dB"}`;
  }
}
