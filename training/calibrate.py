"""`actiseg calibrate`: choose a model's mask threshold on a held-out split.

    actiseg calibrate --model models/default --data data/synth_default --split val --json runs/default/calibration.json

Why a model needs one: the mask loss compares the stride-4 logits with cell-coverage fractions (objective.
downsample averages the full-resolution mask over each 4x4 cell) under a focal loss with alpha 0.25, whose
optimum for a soft target y is about 0.25y / (0.25y + 0.75(1 - y)): a half-covered cell is learnt near 0.25,
and a 0.5 threshold leaves thin objects (spoons, carrots, peelers) with masks that are too small or empty.
The model runs once per segment; every threshold is then scored from the same logits with the `actiseg eval`
metrics, and the one with the best gIoU (ties: the higher threshold) is chosen. `actiseg export --calibration
FILE` writes it into the model card, which `actiseg infer` and the ROS node read. Calibrate on a split the
reported numbers do not come from (the default model: `val`, reported on `val_human`).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from actiseg_ros.data import actionvos
from actiseg_ros.evaluation.metrics import nan_to_none

from .infer import default_model_path, open_model
from .validate import score_segments

DEFAULT_THRESHOLDS = (0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.07, 0.05, 0.03, 0.02)
CRITERION = "gIoU"


def parse_thresholds(text: str) -> list:
    try:
        values = sorted({float(v) for v in text.split(",") if v.strip()}, reverse=True)
    except ValueError:
        raise ValueError("thresholds must be comma-separated numbers, got %r" % text) from None
    if not values or not all(0.0 < v < 1.0 for v in values):
        raise ValueError("thresholds must lie strictly between 0 and 1, got %r" % text)
    return values


def sweep(runner, root, split: str, thresholds) -> list:
    """-> [{"threshold": t, <the six metrics and four counts>}] for each threshold, from one pass of the model."""
    segments = [s for s in actionvos.read_split(root, split).segments if s.evaluable]
    if not segments:
        raise actionvos.DatasetError("%s: split %s has no evaluable segment" % (root, split))
    scores = score_segments(runner, root, split, segments, thresholds, desc="calibrate %s" % split)
    return [dict(threshold=t, **{k: nan_to_none(v) for k, v in scores[t].result().items()}) for t in thresholds]


def choose(rows: list, criterion: str = CRITERION) -> float:
    """The threshold with the best `criterion`; ties go to the higher threshold (the smaller masks)."""
    scored = [r for r in rows if r.get(criterion) is not None]
    if not scored:
        raise ValueError("no threshold has a %s score" % criterion)
    return max(scored, key=lambda r: (r[criterion], r["threshold"]))["threshold"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="an exported model folder or a .pt checkpoint (default: "
                                                      "the shipped default model)")
    parser.add_argument("--data", required=True, help="ActionVOS-layout root")
    parser.add_argument("--split", default="val", help="a held-out split (not the one you report numbers on)")
    parser.add_argument("--thresholds", default=",".join(str(t) for t in DEFAULT_THRESHOLDS),
                        help="comma-separated mask probability thresholds to score")
    parser.add_argument("--json", required=True, help="output: every threshold's metrics and the chosen one")
    parser.add_argument("--backend", default="ort-cpu", help="engine for exported models")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = library default)")


def main(args) -> int:
    try:
        thresholds = parse_thresholds(args.thresholds)
    except ValueError as err:
        raise SystemExit("actiseg calibrate: %s" % err) from None
    model = args.model or default_model_path()
    rows = sweep(open_model(model, args.backend, args.threads), args.data, args.split, thresholds)
    chosen = choose(rows)
    print("threshold  p-mIoU  n-mIoU  p-cIoU  n-cIoU    gIoU     Acc")
    for row in rows:
        cells = [100 * row[k] if row[k] is not None else float("nan")
                 for k in ("p_mIoU", "n_mIoU", "p_cIoU", "n_cIoU", "gIoU", "acc")]
        print("%9.3g %s%s" % (row["threshold"], " ".join("%7.1f" % c for c in cells),
                              "   <- chosen" if row["threshold"] == chosen else ""))
    report = {"model": str(model), "data": str(args.data), "split": args.split, "criterion": CRITERION,
              "chosen": chosen, "rows": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print("mask threshold %.3g (best %s on %s); written to %s" % (chosen, CRITERION, args.split, args.json))
    return 0


def read_calibration(path) -> dict:
    """A calibration file's chosen threshold and sweep, checked (for `actiseg export --calibration`)."""
    report = json.loads(Path(path).read_text())
    chosen = report.get("chosen") if isinstance(report, dict) else None
    if not isinstance(chosen, (int, float)) or not 0.0 < chosen < 1.0:
        raise ValueError("%s is not an `actiseg calibrate` file (no 'chosen' threshold in (0, 1))" % path)
    return {"mask_threshold": float(chosen), "split": report.get("split"), "criterion": report.get("criterion"),
            "rows": report.get("rows", [])}
