// curves.js: drawing a run's training curves on a canvas: accuracy (left axis, 0-1) and loss (right axis) per
// epoch, with axis values, a dot per epoch (one epoch is a dot, not a blank chart) and a legend; used by the
// Train and Runs pages, each on its own canvas.

/** What the curves are, said under each canvas: not the evaluation's figures, which are of the best epoch's
 * checkpoint, evaluated afterwards (`birdspec evaluate`). */
export const CURVES_NOTE = "Training's curves, per epoch (metrics.csv): val_acc and val_loss are training's own check on the "
  + "validation samples after each epoch, which in runs with no-bird samples include fixed no-bird samples (right answer "
  + "\u201cno bird\u201d); val_acc_species is val_acc on the validation windows (or recordings) alone (a \u201cno bird\u201d answer counts as "
  + "wrong). The checkpoint kept is the epoch with the best val_acc. The metrics and confusion matrix are birdspec "
  + "evaluate's, of that checkpoint, afterwards, on the validation windows (or recordings) alone.";

const SERIES = [["train_acc", "#1f6f5c"], ["val_acc", "#2c7be5"], ["val_acc_species", "#7a4fb5"], ["train_loss", "#b07d00"],
  ["val_loss", "#b3261e"]];
const PAD = { left: 44, right: 50, top: 24, bottom: 30 };

function niceStep(span, count) {
  const raw = span / Math.max(1, count), mag = 10 ** Math.floor(Math.log10(raw || 1));
  return [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
}

/** Draw `curves` ({epoch: [...], train_acc: [...], ...}: columns of metrics.csv) on `canvas`. */
export function drawCurves(canvas, curves) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
  const x0 = PAD.left, x1 = W - PAD.right, y0 = H - PAD.bottom, y1 = PAD.top;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "11px sans-serif";
  const epochs = (curves && curves.epoch) || [];
  if (!epochs.length) { ctx.fillStyle = "#333"; ctx.fillText("no epoch finished yet", x0, H / 2); return; }
  const series = SERIES.filter(([k]) => curves[k] && curves[k].some(Number.isFinite));
  const losses = series.filter(([k]) => k.endsWith("loss")).flatMap(([k]) => curves[k].filter(Number.isFinite));
  const lossStep = niceStep(Math.max(...losses, 0.1), 4), maxLoss = Math.ceil(Math.max(...losses, 0.1) / lossStep) * lossStep;
  const first = epochs[0], last = epochs[epochs.length - 1];
  const x = (e) => (last === first ? (x0 + x1) / 2 : x0 + ((e - first) / (last - first)) * (x1 - x0));
  const yAcc = (v) => y0 - v * (y0 - y1), yLoss = (v) => y0 - (v / maxLoss) * (y0 - y1);
  // axes and grid: accuracy on the left, loss on the right, epochs below
  ctx.strokeStyle = "#ddd"; ctx.fillStyle = "#555"; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = i / 4, yy = yAcc(v);
    ctx.beginPath(); ctx.moveTo(x0, yy); ctx.lineTo(x1, yy); ctx.stroke();
    ctx.textAlign = "right"; ctx.fillText(v.toFixed(2), x0 - 4, yy + 4);
    ctx.textAlign = "left"; ctx.fillText((maxLoss * v).toPrecision(2), x1 + 4, yy + 4);
  }
  const eStep = Math.max(1, niceStep(last - first, 8));
  ctx.textAlign = "center";
  for (let e = first; e <= last; e += eStep) ctx.fillText(String(e), x(e), y0 + 14);
  ctx.fillText("epoch", (x0 + x1) / 2, H - 3);
  ctx.save(); ctx.translate(10, (y0 + y1) / 2); ctx.rotate(-Math.PI / 2); ctx.fillText("accuracy", 0, 0); ctx.restore();
  ctx.save(); ctx.translate(W - 8, (y0 + y1) / 2); ctx.rotate(Math.PI / 2); ctx.fillText("loss", 0, 0); ctx.restore();
  ctx.strokeStyle = "#999"; ctx.strokeRect(x0, y1, x1 - x0, y0 - y1);
  ctx.textAlign = "left";
  let legendX = x0 + 4;
  series.forEach(([k, colour]) => {
    const y = k.endsWith("loss") ? yLoss : yAcc;
    ctx.strokeStyle = colour; ctx.fillStyle = colour; ctx.lineWidth = 1.5;
    ctx.beginPath();
    let started = false;
    curves[k].forEach((v, i) => {
      if (!Number.isFinite(v)) return;
      if (started) ctx.lineTo(x(epochs[i]), y(v)); else { ctx.moveTo(x(epochs[i]), y(v)); started = true; }
    });
    ctx.stroke();
    curves[k].forEach((v, i) => { if (Number.isFinite(v)) { ctx.beginPath(); ctx.arc(x(epochs[i]), y(v), 2.5, 0, 2 * Math.PI); ctx.fill(); } });
    const lastV = curves[k].filter(Number.isFinite).pop();
    const label = `${k} ${lastV.toFixed(3)}`;
    ctx.fillText(label, legendX, 14);
    legendX += ctx.measureText(label).width + 14;
  });
}
