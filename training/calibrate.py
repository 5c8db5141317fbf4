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

`--gates 0.75,0.5,0.3` also sweeps the positive gate (default: only the model's own, the card's or 0.75 for a
checkpoint). Why: a model fine-tuned on noisy labels can come out under-confident about activity (its mean
positive logits fall below the fixed 0.75 gate and whole objects are missed), which no mask threshold repairs.
Every (gate, threshold) pair is scored from the same pass of the model (the mean positive logits are kept and
re-gated); the best gIoU wins, ties going to the higher gate, then the higher threshold. The export writes the
chosen gate into the card's thresholds.positive_gate.
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


def parse_gates(text: str) -> list:
    try:
        values = sorted({float(v) for v in text.split(",") if v.strip()}, reverse=True)
    except ValueError:
        raise ValueError("gates must be comma-separated numbers, got %r" % text) from None
    if not values or not all(0.0 < v < 1.0 for v in values):
        raise ValueError("gates must lie strictly between 0 and 1, got %r" % text)
    return values


def sweep(runner, root, split: str, thresholds, gates=None) -> list:
    """-> [{"gate": g, "threshold": t, <the six metrics and four counts>}] for each positive gate (default: the
    runner's) and mask threshold, gates outer, from one pass of the model."""
    gates = [runner.gate] if gates is None else list(gates)
    segments = [s for s in actionvos.read_split(root, split).segments if s.evaluable]
    if not segments:
        raise actionvos.DatasetError("%s: split %s has no evaluable segment" % (root, split))
    scores = score_segments(runner, root, split, segments, thresholds, desc="calibrate %s" % split, gates=gates)
    return [dict(gate=g, threshold=t, **{k: nan_to_none(v) for k, v in scores[g, t].result().items()})
            for g in gates for t in thresholds]


def choose_pair(rows: list, criterion: str = CRITERION) -> tuple:
    """(gate, threshold) of the row with the best `criterion`; ties go to the higher gate (fewer objects called
    active), then the higher threshold (the smaller masks). Rows without a gate count as one gate."""
    scored = [r for r in rows if r.get(criterion) is not None]
    if not scored:
        raise ValueError("no threshold has a %s score" % criterion)
    best = max(scored, key=lambda r: (r[criterion], r.get("gate", 0.0), r["threshold"]))
    return best.get("gate"), best["threshold"]


def choose(rows: list, criterion: str = CRITERION) -> float:
    """The threshold with the best `criterion`; ties go to the higher threshold (the smaller masks)."""
    return choose_pair(rows, criterion)[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="an exported model folder or a .pt checkpoint (default: "
                                                      "the shipped default model)")
    parser.add_argument("--data", required=True, help="ActionVOS-layout root")
    parser.add_argument("--split", default="val", help="a held-out split (not the one you report numbers on)")
    parser.add_argument("--thresholds", default=",".join(str(t) for t in DEFAULT_THRESHOLDS),
                        help="comma-separated mask probability thresholds to score")
    parser.add_argument("--gates", default=None,
                        help="comma-separated positive gates to score with every threshold (default: only the "
                             "model's own: the card's, 0.75 for a checkpoint)")
    parser.add_argument("--json", required=True, help="output: every threshold's metrics and the chosen one")
    parser.add_argument("--backend", default="ort-cpu", help="engine for exported models")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = library default)")


def main(args) -> int:
    try:
        thresholds = parse_thresholds(args.thresholds)
        gates = parse_gates(args.gates) if args.gates is not None else None
    except ValueError as err:
        raise SystemExit("actiseg calibrate: %s" % err) from None
    model = args.model or default_model_path()
    rows = sweep(open_model(model, args.backend, args.threads), args.data, args.split, thresholds, gates)
    chosen_gate, chosen = choose_pair(rows)
    print("    gate  threshold  p-mIoU  n-mIoU  p-cIoU  n-cIoU    gIoU     Acc")
    for row in rows:
        cells = [100 * row[k] if row[k] is not None else float("nan")
                 for k in ("p_mIoU", "n_mIoU", "p_cIoU", "n_cIoU", "gIoU", "acc")]
        picked = (row["gate"], row["threshold"]) == (chosen_gate, chosen)
        print("%8.3g %10.3g %s%s" % (row["gate"], row["threshold"], " ".join("%7.1f" % c for c in cells),
                                     "   <- chosen" if picked else ""))
    report = {"model": str(model), "data": str(args.data), "split": args.split, "criterion": CRITERION,
              "chosen": chosen, "chosen_gate": chosen_gate, "rows": rows}
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = out.with_name("." + out.name + ".tmp")  # no half-written file for export to read
    temp.write_text(json.dumps(report, indent=2) + "\n")
    temp.replace(out)
    print("positive gate %.3g, mask threshold %.3g (best %s on %s); written to %s"
          % (chosen_gate, chosen, CRITERION, args.split, args.json))
    return 0


def read_calibration(path) -> dict:
    """A calibration file's chosen threshold, gate and sweep, checked (for `actiseg export --calibration`).
    positive_gate is None in files written before the gate was calibrated (the card keeps its default)."""
    report = json.loads(Path(path).read_text())
    chosen = report.get("chosen") if isinstance(report, dict) else None
    if not isinstance(chosen, (int, float)) or not 0.0 < chosen < 1.0:
        raise ValueError("%s is not an `actiseg calibrate` file (no 'chosen' threshold in (0, 1))" % path)
    gate = report.get("chosen_gate")
    if gate is not None and (not isinstance(gate, (int, float)) or not 0.0 < gate < 1.0):
        raise ValueError("%s: 'chosen_gate' must be a number in (0, 1), got %r" % (path, gate))
    return {"mask_threshold": float(chosen), "positive_gate": None if gate is None else float(gate),
            "split": report.get("split"), "criterion": report.get("criterion"), "rows": report.get("rows", [])}
