"""Summarise benchmarks/finetune_domain.sh: docs/finetune/results.json and docs/finetune/table.md.

    python benchmarks/finetune_domain_report.py [--runs runs/finetune_domain] [--out docs/finetune]

For each scored model it reads the `actiseg eval --json` summary and re-scores its val_human predictions with the
evaluation's own functions split by object class: the new classes of kitchen_b (taxonomy.KITCHEN_B_CLASSES:
p-mIoU over every positive sample of those classes, the same metric as the overall one restricted to them)
and the classes the shipped model knew. Training wall times and steps come from the runs' model.pt info.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
from datetime import datetime, timezone
from pathlib import Path

from actiseg_ros.data import taxonomy
from actiseg_ros.data.actionvos import read_split
from actiseg_ros.evaluation.eval_cli import load_segment
from actiseg_ros.evaluation.metrics import MetricAccumulator, nan_to_none, outcomes_from_counts

NEW_IDS = {c.class_id for c in taxonomy.KITCHEN_B_CLASSES}
SCORED = (  # name, data root, what it is
    ("zero_shot", "data/synth_kitchen_b", "shipped default model, zero-shot on kitchen_b"),
    ("finetuned_v1", "data/synth_kitchen_b", "fine-tuned from the default model, recipe v1"),
    ("scratch_v1", "data/synth_kitchen_b", "trained from scratch, v1's data and steps"),
    ("finetuned_v2", "data/synth_kitchen_b", "fine-tuned from the default model, recipe v2 (finetune.yaml)"),
    ("scratch_v2", "data/synth_kitchen_b", "trained from scratch, v2's data and steps"),
    ("default_old_domain", "data/synth_default", "shipped default model on its own domain"),
    ("finetuned_v1_old_domain", "data/synth_default", "v1 fine-tuned model on the old domain"),
    ("finetuned_v2_old_domain", "data/synth_default", "v2 fine-tuned model on the old domain"),
    # Positive gate calibrated too (`eval v2-gate`): gate and mask threshold chosen on kitchen_b val, and that
    # one pair used on both domains (the _old_domain rows share their kitchen_b row's calibration file)
    ("finetuned_v2_gate", "data/synth_kitchen_b", "v2 fine-tuned model, gate + threshold calibrated on kitchen_b val"),
    ("finetuned_v2_gate_old_domain", "data/synth_default", "v2 fine-tuned model on the old domain, kitchen_b's pair"),
    ("zero_shot_gate", "data/synth_kitchen_b", "shipped default model, gate + threshold calibrated on kitchen_b val"),
    ("zero_shot_gate_old_domain", "data/synth_default", "shipped default model on its domain, kitchen_b's pair"),
)
DEFAULT_GATE = 0.75  # the card's gate (and the checkpoints') where the calibration did not choose one
RUNS = ("v1/finetune", "v1/scratch", "v2/finetune", "v2/scratch")


def by_class_group(pred_dir, root, split: str = "val_human") -> dict:
    """{'new': metrics, 'old': metrics} over the evaluable segments, as `actiseg eval` scores them."""
    groups = {"new": MetricAccumulator(), "old": MetricAccumulator()}
    data = read_split(root, split)
    for segment in [s for s in data.segments if s.evaluable]:
        positives = {k: bool(info.positive) for k, info in segment.objects.items()}
        for pair in load_segment(pred_dir, root, split, segment, missing_as_empty=False):
            for object_id, outcome in outcomes_from_counts(pair.counts, positives).items():
                group = "new" if segment.objects[object_id].class_id in NEW_IDS else "old"
                groups[group].add(outcome)
    return {name: {k: nan_to_none(v) for k, v in acc.result().items()} for name, acc in groups.items()}


def percent(value) -> str:
    return "-" if value is None else "%.1f" % (100 * value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/finetune_domain")
    parser.add_argument("--out", default="docs/finetune")
    args = parser.parse_args()
    runs, out = Path(args.runs), Path(args.out)
    results = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "machine": {
        "cpu": platform.processor() or platform.machine(), "cores": __import__("os").cpu_count(),
        "python": platform.python_version()}, "models": {}, "training": {}}
    for name, root, what in SCORED:
        summary_path = out / ("%s.json" % name)
        if not summary_path.is_file():
            continue
        summary = json.loads(summary_path.read_text())
        calibration_name = name[:-len("_old_domain")] if "_gate_old_domain" in name else name
        calibration = json.loads((runs / ("%s.calibration.json" % calibration_name)).read_text())
        record = {"what": what, "data": root, "mask_threshold": calibration["chosen"],
                  "positive_gate": calibration.get("chosen_gate", DEFAULT_GATE),
                  "calibrated_on": "%s %s" % (Path(calibration.get("data", root)).name, calibration.get("split")),
                  "val_human": summary}
        record["by_class_group"] = by_class_group(runs / ("%s.pred" % name), root)
        results["models"][name] = record
    for run in RUNS:
        weights = runs / run / "model.pt"
        if weights.is_file():
            import torch

            state = torch.load(weights, map_location="cpu", weights_only=False)
            log = (runs / run).parent / (Path(run).name + ".log")  # /usr/bin/time's line ends it
            wall = [line for line in log.read_text().splitlines() if " wall " in line] if log.is_file() else []
            results["training"][run] = {"info": state.get("info", {}), "init_from": state["config"]["init_from"],
                                        "wall": wall[-1] if wall else None, "mix_data": state["config"]["mix_data"],
                                        "lr": state["config"]["lr"], "epochs": state["config"]["epochs"],
                                        "loss": {k: state["config"]["loss"][k] for k in
                                                 ("pmhm", "pmhm_warmup_epochs", "strategy", "object_mask")}}
    kept = out / "runs"  # the small files behind the numbers: threshold sweeps and training logs
    kept.mkdir(exist_ok=True)
    for path in sorted(runs.glob("*.calibration.json")):
        shutil.copy(path, kept / path.name)
    for run in RUNS:
        if (runs / run / "train_log.csv").is_file():
            shutil.copy(runs / run / "train_log.csv", kept / ("%s_train_log.csv" % run.replace("/", "_")))
    times = runs / "times.txt"
    if times.is_file():
        results["log"] = times.read_text().splitlines()
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    rows = ["| model | data (val_human) | calibrated on | gate | mask thr. | gIoU | p-mIoU | n-mIoU | Acc | "
            "p-mIoU new classes | p-mIoU old classes |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, record in results["models"].items():
        s, groups = record["val_human"], record["by_class_group"]
        rows.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, Path(record["data"]).name, record["calibrated_on"], record["positive_gate"],
            record["mask_threshold"], percent(s.get("gIoU")),
            percent(s.get("p_mIoU")), percent(s.get("n_mIoU")), percent(s.get("acc")),
            percent(groups["new"]["p_mIoU"]), percent(groups["old"]["p_mIoU"])))
    (out / "table.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
