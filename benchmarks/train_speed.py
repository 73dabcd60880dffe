"""Training throughput: samples per second through frontend + backbone + backward + optimizer step.

Synthetic batches of raw 32 kHz waveforms (``--batch-size``, default 16, the
study's) for every model and encoding:

- ``stack10``: 10 x 160000 samples -> 10 x 128 x 321 log-mel per sample;
- ``window``:   1 x 160000 samples ->  1 x 128 x 321.

On the CPU with ``--threads`` torch threads (default 2) in float32; on CUDA
with 16-bit mixed precision (as ``birdspec train`` uses there). Prints a table
(``--json``: one JSON list)::

    python benchmarks/train_speed.py                  # CPU, and CUDA when available
    python benchmarks/train_speed.py --device cuda --steps 20
    python benchmarks/train_speed.py --models resnet18 --encodings window

``cpu_s/sample`` (process CPU time per sample) holds on a busy machine too,
where wall-clock figures drop.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F

from birdspec.models.registry import build_model, count_parameters
from birdspec.runtime import use_fast_cpu_math

MODELS = ("mobilenetv2-seed", "mobilenetv2", "resnet18")
ENCODINGS = {"stack10": 10, "window": 1}
NUM_CLASSES = 6
WINDOW_SAMPLES = 160_000


def measure(
    model_name: str, *, channels: int, device: torch.device, batch_size: int, steps: int, warmup: int, amp: bool
) -> dict[str, Any]:
    """Time ``steps`` training steps (after ``warmup``) of one model on one synthetic batch size."""
    torch.manual_seed(0)
    model = build_model(model_name, in_channels=channels, num_classes=NUM_CLASSES).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    wave = 0.1 * torch.randn(batch_size, channels, WINDOW_SAMPLES, device=device)
    labels = torch.randint(0, NUM_CLASSES, (batch_size,), device=device)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
            loss = F.cross_entropy(model(wave).float(), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return float(loss.detach())

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    sync()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = steps * batch_size
    return {
        "device": str(device) if device.type == "cpu" else f"cuda ({torch.cuda.get_device_name(device)})",
        "model": model_name,
        "encoding": "stack10" if channels == 10 else "window",
        "channels": channels,
        "params": count_parameters(model),
        "batch_size": batch_size,
        "precision": "16-mixed" if amp else "32-true",
        "steps": steps,
        "samples_per_s": n / wall,
        "ms_per_step": 1000 * wall / steps,
        "cpu_s_per_sample": cpu / n,
        "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("all", "cpu", "cuda"), default="all", help="all (default): CPU and, when present, CUDA")
    p.add_argument("--steps", type=int, default=3, help="timed steps per configuration (default 3; use 20+ on a GPU)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--encodings", nargs="+", default=list(ENCODINGS), choices=list(ENCODINGS))
    p.add_argument("--no-amp", action="store_true", help="float32 on CUDA too")
    p.add_argument("--json", action="store_true", help="print one JSON list")
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1:
        p.error("--steps and --batch-size must be >= 1")

    devices = []
    if args.device in ("all", "cpu"):
        devices.append(torch.device("cpu"))
    if args.device in ("all", "cuda"):
        if torch.cuda.is_available():
            devices.append(torch.device("cuda"))
        elif args.device == "cuda":
            p.error("no CUDA GPU visible")
    torch.set_num_threads(args.threads)
    use_fast_cpu_math()  # as `birdspec train` does
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True

    rows = []
    header = (f"{'device':<28} {'model':<17} {'encoding':<8} {'input':>14} {'params':>11} {'precision':<9} {'samples/s':>10} "
              f"{'ms/step':>9} {'cpu_s/sample':>12} {'peak GiB':>8}")
    if not args.json:
        print(f"training throughput, batch {args.batch_size}, {args.steps} timed steps, CPU threads {args.threads}")
        print(header)
        print("-" * len(header))
    for device in devices:
        amp = device.type == "cuda" and not args.no_amp
        for name in args.models:
            for enc in args.encodings:
                r = measure(
                    name, channels=ENCODINGS[enc], device=device, batch_size=args.batch_size,
                    steps=args.steps, warmup=args.warmup, amp=amp,
                )
                rows.append(r)
                if not args.json:
                    shape = f"{r['channels']}x{WINDOW_SAMPLES}"
                    mem = f"{r['peak_mem_gib']:.2f}" if r["peak_mem_gib"] is not None else "-"
                    print(
                        f"{r['device'][:28]:<28} {name:<17} {enc:<8} {shape:>14} {r['params']:>11,} {r['precision']:<9} "
                        f"{r['samples_per_s']:>10.2f} {r['ms_per_step']:>9.0f} {r['cpu_s_per_sample']:>12.3f} {mem:>8}",
                        flush=True,
                    )
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
