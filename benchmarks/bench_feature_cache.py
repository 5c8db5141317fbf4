"""Seconds per training step with and without the frozen-backbone feature cache (training/feature_cache.py).

    nice .venv/bin/python benchmarks/bench_feature_cache.py --config robustness_standard \
        --set data_root=data/synth_default --steps 40 --out benchmarks/results/bench_feature_cache

Three runs of the source tree's training loop (benchmarks/source_training.py) with the same seed and steps:
no cache, a cold cache (it computes and stores every frame and the prompt bank) and a warm cache (it reads
them). Per step: the loop's own clock (train_log.csv, logged every step) from step --skip to the last step;
set-up: the run's wall time minus its loop (model build, init weights, prompt bank). Also checks that the
three runs log the same losses and end with identical weights. Writes OUT.json and OUT.md with the machine
and the load average before and after each run (the 2-core VM is often shared: read the load).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_node import cpu_name  # noqa: E402  (benchmarks/ is this script's folder)
from source_training import import_training  # noqa: E402


def timed_run(config, run_dir: Path, skip: int) -> dict:
    from actiseg_ros.training.train import train

    load_before = os.getloadavg()
    started = time.monotonic()
    final = train(config, run_dir, log=lambda *a: None)
    wall = time.monotonic() - started
    with open(run_dir / "train_log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    seconds = [float(r["seconds"]) for r in rows]
    steps = [int(r["step"]) for r in rows]
    per_step = (seconds[-1] - seconds[skip - 1]) / (steps[-1] - steps[skip - 1])
    return {"seconds_per_step": round(per_step, 4), "loop_seconds": seconds[-1],
            "setup_seconds": round(wall - seconds[-1], 1), "wall_seconds": round(wall, 1),
            "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
            "losses": [(r["total"], r["mask"], r["positive"]) for r in rows], "weights": str(final)}


def same_weights(a, b) -> bool:
    import torch

    first = torch.load(a, map_location="cpu", weights_only=False)["model"]
    second = torch.load(b, map_location="cpu", weights_only=False)["model"]
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--skip", type=int, default=5, help="steps left out of the per-step time (warm-up)")
    parser.add_argument("--out", type=Path, required=True, help="OUT.json and OUT.md are written")
    args = parser.parse_args()

    import_training()
    from actiseg_ros.training.config import load_config
    from actiseg_ros.training.train_cli import parse_overrides, resolve_config_path

    overrides = parse_overrides(args.set)
    overrides.update(max_steps=args.steps, log_every=1, checkpoint_every=10 ** 6)
    paths = [resolve_config_path(c) for c in args.config]
    runs = {}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        for name, cache in (("no cache", ""), ("cold cache", str(work / "cache")), ("warm cache", str(work / "cache"))):
            config = load_config(paths, dict(overrides, feature_cache=cache))
            runs[name] = timed_run(config, work / name.replace(" ", "_"), args.skip)
            print("%s: %.3f s/step, set-up %.1f s" % (name, runs[name]["seconds_per_step"],
                                                       runs[name]["setup_seconds"]), flush=True)
        reference = runs["no cache"]
        identical = {name: run["losses"] == reference["losses"] and same_weights(run["weights"], reference["weights"])
                     for name, run in runs.items() if name != "no cache"}
    for run in runs.values():
        del run["losses"], run["weights"]
    speedup = runs["no cache"]["seconds_per_step"] / runs["warm cache"]["seconds_per_step"]
    document = {"config": [str(p) for p in paths], "set": args.set, "steps": args.steps, "skip": args.skip,
                "machine": {"cpu": cpu_name(), "cpus": os.cpu_count(), "torch_threads": config.threads},
                "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "runs": runs,
                "speedup_per_step_warm": round(speedup, 3), "identical_losses_and_weights": identical}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n")
    lines = ["# Feature cache: seconds per training step", "",
             "`%s` (%s), %d steps, per-step time over steps %d-%d; %s UTC; %s, %d CPUs, torch threads %s." % (
                 " ".join(["benchmarks/bench_feature_cache.py"] + ["--config %s" % c for c in args.config]
                          + ["--set %s" % s for s in args.set] + ["--steps %d" % args.steps]),
                 " + ".join(p.name for p in paths), args.steps, args.skip + 1, args.steps, document["date_utc"],
                 document["machine"]["cpu"], os.cpu_count(), config.threads), "",
             "| run | s / step | set-up s | wall s | load average before | after |", "|---|---|---|---|---|---|"]
    for name, run in runs.items():
        lines.append("| %s | %.3f | %.1f | %.1f | %s | %s |" % (name, run["seconds_per_step"], run["setup_seconds"],
                                                                run["wall_seconds"], run["load_before"],
                                                                run["load_after"]))
    lines += ["", "Speed-up per step with a warm cache: %.2fx. Same losses and bit-identical final weights as "
              "without the cache: %s." % (speedup, ", ".join("%s %s" % (k, "yes" if v else "NO")
                                                              for k, v in identical.items()))]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
