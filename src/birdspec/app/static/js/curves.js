// curves.js: drawing a run's training curves (accuracy and loss per epoch) on a canvas; used by the Train
// and Runs pages, each on its own canvas.

const SERIES = [["train_acc", "#1f6f5c"], ["val_acc", "#2c7be5"], ["train_loss", "#b07d00"], ["val_loss", "#b3261e"]];

/** Draw `curves` ({epoch: [...], train_acc: [...], ...}: columns of metrics.csv) on `canvas`. */
export function drawCurves(canvas, curves) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, pad = 36;
  ctx.clearRect(0, 0, W, H);
  const epochs = curves.epoch || [];
  if (!epochs.length) { ctx.fillText("no epochs yet", pad, H / 2); return; }
  const series = SERIES.filter(([k]) => curves[k]);
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
