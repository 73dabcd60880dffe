"""``birdspec export``: a checkpoint as ONNX or TorchScript taking raw waveforms."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)

DESCRIPTION = """\
Export a checkpoint with its log-mel frontend inside, so the exported model
takes raw 32 kHz mono audio: input 'waveform' float32 (batch, channels,
samples) -- channels = 10 consecutive 5 s windows for stack10 checkpoints, 1
for window checkpoints; the batch is dynamic -- and returns 'logits' and
'scores' (softmax or sigmoid, as trained). A sidecar FILE.json beside it holds
the classes, class names, frontend and encoding.

ONNX: the STFT is computed as a strided convolution with windowed DFT bases
(the ONNX exporter cannot export torch.stft), checked against PyTorch with
ONNX Runtime: the largest logit difference must be <= 1e-4 (on --check-audio,
or a synthetic signal), else the command fails with exit status 2.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from birdspec.prediction.choices import CHECK_TOLERANCE, EXPORT_FORMATS

    p = subparsers.add_parser(
        "export",
        help="export a checkpoint (frontend included) to ONNX or TorchScript",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", help="checkpoint file (or a run folder with best.pt / last.pt)")
    p.add_argument("--format", choices=EXPORT_FORMATS, default="onnx", help="default onnx")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the model (the sidecar is FILE with .json)")
    p.add_argument("--check-audio", default=None, metavar="AUDIO", help="recording to check the export on (default: a synthetic signal)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing FILE (or its sidecar) of another kind")
    p.add_argument("--tolerance", type=float, default=CHECK_TOLERANCE, help=f"largest accepted logit difference vs PyTorch (default "
        f"{CHECK_TOLERANCE:g})")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from birdspec.fileio import refuse_output_over_inputs, refuse_replacing
    from birdspec.models.checkpoint import resolve_checkpoint_path
    from birdspec.prediction.export import export_checkpoint

    ckpt = resolve_checkpoint_path(args.checkpoint)
    refuse_output_over_inputs(args.out, [ckpt] + ([args.check_audio] if args.check_audio else []))
    refuse_output_over_inputs(str(Path(args.out).with_suffix(".json")), [ckpt], option="the sidecar of --out")
    model_kind = {"suffixes": (".onnx",)} if args.format == "onnx" else {"suffixes": (".pt", ".pth", ".ts", ".torchscript"), "magic": "zip"}
    refuse_replacing(args.out, overwrite=args.overwrite, **model_kind)
    refuse_replacing(Path(args.out).with_suffix(".json"), suffixes=(".json",), overwrite=args.overwrite, option="the sidecar of --out")

    result = export_checkpoint(args.checkpoint, fmt=args.format, out=args.out, check_audio=args.check_audio, tolerance=args.tolerance)
    print(f"wrote {result.path} and {result.sidecar} (max |logit difference| vs PyTorch: {result.max_abs_diff:.2e} on {result.checked_on})")
    return 0
