"""No-bird benchmark: false detections per hour of audio without the target species, at each model's own thresholds.

    python benchmarks/no_bird.py [BIRDCLEF_DIR] [--runs bench-out/soundscapes] [--out bench-out/no_bird]
        [--variants default,default-band,closed,birdnet-linear,birdnet-prior,birdnet] [--minutes 5]
        [--folds 0,1,2,3,4] [--birdnet-folds 0]

The models are the fold runs of ``benchmarks/soundscapes.py`` (run it first; same ``--runs`` folder): for
each variant, fold k's model was trained on the other four folds of the reed warblers and never heard fold
k. Each model scores, with ``birdspec predict``'s defaults (its stored per-class thresholds, at most 3
classes per window; BirdNET as it is at its default confidence 0.1 and at 0.25):

- **synthetic** (:mod:`birdspec.data.backgrounds`, seed :data:`SEED`, never a training or validation draw):
  digital silence and dithered silence, and white, pink, brown noise, wind rumble, rain and mains hum at
  -80, -60, -40 and -20 dBFS, ``--minutes`` each (the kinds the models' no-bird samples come from, at other
  seeds: the in-distribution part; the synthetic frog/insect chorus is left out, the real toad chorus tests it);
- **toad and forest**: the shared toad chorus (whole) and the stretches of the neotropical forest
  recording that its Audacity labels leave free of the labelled spinetail and CRER calls (:func:`forest_gaps`);
- **held-out quiet parts**: the quiet stretches (the no-bird rule of training,
  :func:`birdspec.data.nocall.quiet_stretches`) of fold k's own recordings, joined with 10 ms fades.

These three make the no-bird corpus of the goal (false detections per hour at the stored threshold). A
second table swaps the held-out quiet parts for the **band-checked** ones: the same stretches where no
third-octave band from 1 to 12 kHz stands 8 dB above its floor either (:class:`birdspec.data.nocall.BandCheck`:
the energy rule lets faint song under low-frequency noise through), a corpus that truly holds none of the
four species, at the price of fewer minutes. Also
reported, apart and not in that total: **other birds**, the shared recordings full of other songbirds (two
North American field recordings, a xeno-canto soundscape): what a model that knows four species makes of
species it never heard.

Every written (window, class) is a false detection. Reported per source group: detections per hour (mean ±
std over the folds' models) and the windows with any detection. The held-out quiet parts are quiet by an
energy rule only and can hold faint song of the recording's own species, so the detections there that name
a species of the recording they come from (primary or secondary label) are counted apart too, and the
total is also given without them (a lower bound; the total with them is the upper one). Writes OUT/no_bird.json and OUT/no_bird.md;
no timing (the load does not enter the figures).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

if __name__ == "__main__" and not __package__:  # run as a file: import the benchmarks package, as python -m does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.common import DEFAULT_DATA, start_run  # noqa: E402
from benchmarks.soundscapes import RECORDINGS, VARIANTS  # noqa: E402

SEED = 20261206
LEVELS_DBFS = (-80, -60, -40, -20)
NOISE_KINDS = ("white", "pink", "brown", "wind", "rain", "hum")
DEFAULT_VARIANTS = ("default", "default-calls", "default-band", "closed", "birdnet-linear", "birdnet-prior", "birdnet")
BIRDNET_CONFS = (0.1, 0.25)
SR = 32000
FADE_S = 0.01


def synthetic_corpus(minutes: float) -> list[tuple[str, np.ndarray]]:
    """``(name, audio)`` of every synthetic source (see the module doc)."""
    from birdspec.data.backgrounds import synth_background

    rng = np.random.default_rng(SEED)
    n = int(round(minutes * 60 * SR))
    out = [("digital silence", np.zeros(n, np.float32)),
           ("dithered silence", synth_background("silence", num_samples=n, level_dbfs=-90, rng=rng))]
    for kind in NOISE_KINDS:
        for level in LEVELS_DBFS:
            out.append((f"{kind} {level} dBFS", synth_background(kind, num_samples=n, level_dbfs=level, rng=rng)))
    return out


TOAD = "osm-great_plains_toad.flac"
FOREST = "maad-spinetail.flac"
OTHER_BIRDS = ("osm-1min.flac", "osm-birds_10s.wav", "XC563936-soundscape.mp3")
MIN_GAP_S = 1.0
GROUPS = ("synthetic", "toad and forest", "held-out quiet parts")
"""The no-bird corpus of the goal; "other birds" is reported apart."""
BAND_CHECKED = "held-out quiet parts, band-checked"
STRICT_GROUPS = (*GROUPS[:2], BAND_CHECKED)
"""The corpus with the held-out quiet parts cleaned of faint song (the second table)."""
QUIET_GROUPS = (GROUPS[2], BAND_CHECKED)


def joined(parts: list[np.ndarray]) -> np.ndarray:
    """Audio pieces joined with :data:`FADE_S` fades in and out (no click where they meet)."""
    fade = int(FADE_S * SR)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    out = []
    for part in parts:
        part = np.asarray(part, dtype=np.float32).copy()
        if part.size > 2 * fade:
            part[:fade] *= ramp
            part[-fade:] *= ramp[::-1]
            out.append(part)
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def forest_gaps() -> np.ndarray:
    """The forest recording where its Audacity labels hold no call (gaps of at least :data:`MIN_GAP_S`), joined."""
    from birdspec.audio import load

    wave = load(RECORDINGS / FOREST, sample_rate_hz=SR)
    labels = [line.split("\t") for line in (RECORDINGS / FOREST).with_suffix(".txt").read_text().splitlines()
              if line.strip() and not line.startswith("\\")]
    calls = sorted((float(a), float(b)) for a, b, *_ in labels)
    gaps, t = [], 0.0
    for a, b in calls + [(wave.size / SR, wave.size / SR)]:
        if a - t >= MIN_GAP_S:
            gaps.append(wave[int(t * SR) : int(a * SR)])
        t = max(t, b)
    return joined(gaps)


def quiet_parts(data, fold: int, *, band_check=None) -> tuple[np.ndarray, list[tuple[float, float, frozenset[str]]]]:
    """The quiet stretches of fold ``fold``'s recordings (with ``band_check``, a
    :class:`~birdspec.data.nocall.BandCheck`, on top of the energy rule), joined with short fades (32 kHz), and
    where each recording's stretches lie in the joined audio: ``(start_s, end_s, its labels)`` (primary and secondary)."""
    from birdspec.data.catalog import parse_label_list
    from birdspec.data.nocall import QuietRule, quiet_stretches

    m, parts, spans, t = data.manifest, [], [], 0
    for row in data.select(folds=[fold]):
        wave = np.asarray(data.store.read(int(m["offset"].iloc[row]), int(m["num_samples"].iloc[row])), dtype=np.float32)
        stretches = quiet_stretches(wave, SR, QuietRule(), band_check=band_check)
        pieces = [wave[a:b] for a, b in stretches if b - a > 2 * int(FADE_S * SR)]  # joined() keeps these
        n = sum(len(x) for x in pieces)
        if n:
            labels = {str(m["label"].iloc[row])}
            if "secondary_labels" in m.columns:
                labels |= set(parse_label_list(m["secondary_labels"].iloc[row]))
            spans.append((t / SR, (t + n) / SR, frozenset(labels)))
        parts += pieces
        t += n
    return joined(parts), spans


def own_species(table, spans: list[tuple[float, float, frozenset[str]]]) -> np.ndarray:
    """Per detection row of ``table``: does it name a species of a recording whose quiet stretches its window
    overlaps? (The energy rule calls those stretches quiet, yet they can hold faint song of that species.)"""
    if not len(table):
        return np.zeros(0, dtype=bool)
    return np.array([any(a < r.end_s and r.start_s < b and r.label in labels for a, b, labels in spans)
                     for r in table.itertuples()], dtype=bool)


def predict_sources(predictor, sources: list[tuple[str, str, object]]) -> list[tuple[str, str, object, float]]:
    """``(group, name, detections table, seconds)`` of ``predictor`` on ``(group, name, audio array or path)`` sources."""
    import soundfile as sf

    out = []
    for group, name, audio in sources:
        if isinstance(audio, Path):
            out.append((group, name, predictor.predict_file(audio), float(sf.info(str(audio)).duration)))
        elif len(audio):
            out.append((group, name, predictor.predict_array(audio, SR, name=name), len(audio) / SR))
    return out


def count(tables: list[tuple[str, str, object, float]], min_conf: float | None = None,
          spans: dict[str, list[tuple[float, float, frozenset[str]]]] | None = None) -> list[dict]:
    """Detections per source, those at ``min_conf`` or above when given (the tables were predicted at a lower
    one: the top 3 of a window above a higher threshold are among its top 3 above the lower one). Sources
    named in ``spans`` (the held-out quiet parts) also count the detections of the recordings' own species."""
    rows = []
    for group, name, table, seconds in tables:
        if min_conf is not None:
            table = table[table["confidence"] >= min_conf]
        top = table.sort_values("confidence", ascending=False).head(3)
        rows.append({"group": group, "source": name, "seconds": seconds, "detections": int(len(table)),
                     "windows": int(table["window"].nunique()) if len(table) else 0,
                     "top": [f"{r.label} {r.confidence:.2f}" for r in top.itertuples()]})
        if spans and name in spans:
            rows[-1]["own_species"] = int(own_species(table, spans[name]).sum())
    return rows


def per_hour(rows: list[dict], group: str | None = None, *, own: bool = True) -> float:
    """Detections per hour of ``rows`` (those of ``group``); ``own=False`` leaves out the detections of the
    held-out recordings' own species in their quiet parts (NaN when a row predates that count)."""
    rs = [r for r in rows if group is None or r["group"] == group]
    hours = sum(r["seconds"] for r in rs) / 3600
    if not own and any(r["group"] in QUIET_GROUPS and "own_species" not in r for r in rs):
        return float("nan")
    n = sum(r["detections"] - (0 if own else r.get("own_species", 0)) for r in rs)
    return n / hours if hours else float("nan")


def _pm(values: list[float]) -> str:
    """Mean ± std (ddof 1) of per-fold figures, "-" when one is missing."""
    v = np.asarray(values, dtype=float)
    if np.isnan(v).any():
        return "-"
    return f"{v.mean():.2f}" + (f" ± {v.std(ddof=1):.2f}" if v.size > 1 else "")


def markdown(results: list[dict]) -> str:
    lines = ["| model | threshold | folds | no-bird hours per fold | **false detections per hour** | without the held-out "
             "recordings' own species | " + " | ".join(GROUPS) + " | held-out quiet parts: own species | other birds (apart) |",
             "|---|---|---|---|---|---|" + "---|" * (len(GROUPS) + 2)]
    for key in dict.fromkeys((r["variant"], r["threshold"]) for r in results):
        rs = [r for r in results if (r["variant"], r["threshold"]) == key]
        corpus = [[x for x in r["rows"] if x["group"] in GROUPS] for r in rs]
        hours = np.mean([sum(x["seconds"] for x in c) / 3600 for c in corpus])
        quiet = [[x for x in r["rows"] if x["group"] == "held-out quiet parts"] for r in rs]
        own = [per_hour(q) - per_hour(q, own=False) for q in quiet]
        cells = [_pm([per_hour(r["rows"], g) for r in rs]) for g in GROUPS] + [_pm(own), _pm([per_hour(r["rows"], "other birds") for r in rs])]
        desc, model = VARIANTS[key[0]][0], VARIANTS[key[0]][1]
        lines.append(f"| {model}: {desc} | {key[1]} | {len(rs)} | {hours:.2f} | **{_pm([per_hour(c) for c in corpus])}** | "
                     f"{_pm([per_hour(c, own=False) for c in corpus])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_band_checked(results: list[dict]) -> str:
    """The second table: the corpus with the band-checked quiet parts (models whose counts have them)."""
    lines = ["| model | threshold | folds | band-checked quiet parts: minutes per fold (energy rule alone) | **false "
             "detections per hour** | without the held-out recordings' own species | band-checked quiet parts | "
             "band-checked quiet parts: own species |", "|---|---|---|---|---|---|---|---|"]
    for key in dict.fromkeys((r["variant"], r["threshold"]) for r in results):
        rs = [r for r in results if (r["variant"], r["threshold"]) == key
              and any(x["group"] == BAND_CHECKED for x in r["rows"])]
        if not rs:
            continue
        corpus = [[x for x in r["rows"] if x["group"] in STRICT_GROUPS] for r in rs]
        checked = [[x for x in r["rows"] if x["group"] == BAND_CHECKED] for r in rs]
        minutes = [sum(x["seconds"] for x in c) / 60 for c in checked]
        energy = [sum(x["seconds"] for x in r["rows"] if x["group"] == GROUPS[2]) / 60 for r in rs]
        desc, model = VARIANTS[key[0]][0], VARIANTS[key[0]][1]
        lines.append(f"| {model}: {desc} | {key[1]} | {len(rs)} | {np.mean(minutes):.1f} ({np.mean(energy):.1f}) | "
                     f"**{_pm([per_hour(c) for c in corpus])}** | {_pm([per_hour(c, own=False) for c in corpus])} | "
                     f"{_pm([per_hour(c) for c in checked])} | {_pm([per_hour(c) - per_hour(c, own=False) for c in checked])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="?", default=str(DEFAULT_DATA))
    p.add_argument("--runs", default="bench-out/soundscapes", help="the out folder of benchmarks/soundscapes.py")
    p.add_argument("--out", default="bench-out/no_bird")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
    p.add_argument("--folds", default="0,1,2,3,4")
    p.add_argument("--birdnet-folds", default=None,
                   help="folds of the variants that run BirdNET (its heads and itself; default --folds): BirdNET scores "
                        "about 60x real time on 2 cores, so each of its models takes minutes over the corpus")
    p.add_argument("--minutes", type=float, default=5.0, help="minutes of each synthetic source (default 5: 2.2 h)")
    args = p.parse_args(argv)
    root, out, _device, machine = start_run(args.data, args.out, "cpu")
    from birdspec.data.nocall import BandCheck
    from birdspec.data.prepared import PreparedDataset
    from birdspec.fileio import read_json, write_json
    from birdspec.prediction.predictor import Predictor

    runs = Path(args.runs)
    synthetic = synthetic_corpus(args.minutes)
    fixed = ([("synthetic", n, a) for n, a in synthetic] + [("toad and forest", TOAD, RECORDINGS / TOAD),
             ("toad and forest", f"{FOREST} (unlabelled stretches)", forest_gaps())]
             + [("other birds", name, RECORDINGS / name) for name in OTHER_BIRDS])
    results = []
    for variant in [v for v in args.variants.split(",") if v]:
        if variant not in VARIANTS:
            raise SystemExit(f"unknown variant {variant!r}; use {', '.join(VARIANTS)}")
        folds = args.birdnet_folds if args.birdnet_folds is not None and VARIANTS[variant][1].startswith("birdnet") else args.folds
        for k in [int(f) for f in folds.split(",") if f]:
            ckpt = runs / "runs" / variant / f"fold_{k}" / "checkpoints" / "last.pt"
            reference = "--activation" in VARIANTS[variant][3]
            confs = BIRDNET_CONFS if reference else (None,)
            caches = {conf: out / f"{variant}_fold{k}_{conf or 'stored'}.json" for conf in confs}
            kept = {conf: read_json(c) for conf, c in caches.items()}
            # no counts kept: score every source; counts from before the band check: score only its part
            whole = any(d is None for d in kept.values())
            if whole or any(not any(x["group"] == BAND_CHECKED for x in d["rows"]) for d in kept.values()):
                if not ckpt.is_file():
                    print(f"{variant} fold {k}: no {ckpt} (run benchmarks/soundscapes.py --variants {variant} first); skipped")
                    continue
                data = PreparedDataset(read_json(ckpt.parent.parent / "config.json")["dataset"]["path"])
                sources, spans = [], {}
                if whole:
                    quiet, spans[f"fold {k}"] = quiet_parts(data, k)
                    sources = fixed + [(GROUPS[2], f"fold {k}", quiet)]
                checked, spans[f"fold {k}, band-checked"] = quiet_parts(data, k, band_check=BandCheck())
                sources.append((BAND_CHECKED, f"fold {k}, band-checked", checked))
                with Predictor(ckpt, min_conf=min(BIRDNET_CONFS) if reference else None,  # one prediction serves all
                               activation="sigmoid" if reference else "auto") as predictor:
                    tables = predict_sources(predictor, sources)
                for conf, cache in caches.items():
                    earlier = [] if whole else [x for x in kept[conf]["rows"] if x["group"] != BAND_CHECKED]
                    write_json(cache, {"variant": variant, "fold": k, "threshold": f"{conf:g}" if conf else "stored",
                                       "rows": earlier + count(tables, conf, spans)})
            for cache in caches.values():
                done = read_json(cache)
                results.append(done)
                corpus = [x for x in done["rows"] if x["group"] in GROUPS]
                strict = [x for x in done["rows"] if x["group"] in STRICT_GROUPS]
                print(f"{variant} fold {k} ({done['threshold']}): {per_hour(corpus):.2f} false detections per hour, "
                      f"{per_hour(strict):.2f} with the band-checked quiet parts "
                      f"(other birds: {per_hour(done['rows'], 'other birds'):.1f})", flush=True)
            write_json(out / "no_bird.json", {"machine": machine, "results": results})
            (out / "no_bird.md").write_text(f"Machine: {machine}\n\n{markdown(results)}\n\n{markdown_band_checked(results)}\n")
    print()
    print(markdown(results))
    print()
    print(markdown_band_checked(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
