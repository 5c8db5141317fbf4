"""Measure the `standard` robustness grid's cost on this machine: seconds per training step of every method
(warm feature cache, as the grid runs after each data set's first cell) and the per-cell overhead (set-up,
`actiseg infer` and `actiseg eval` on the clean val_human). The numbers go into the grid file's `cost`.

    nice .venv/bin/python benchmarks/standard_grid_cost.py --data data/synth_default --cache /tmp/cache \
        --out benchmarks/results/standard_grid_cost.json

--data is any `default`-preset data set at 427x240 (the step time does not depend on the synth seed). Each
method trains --steps steps with the cell's own config (training seed 0); NPN is measured after its warm-up
(its strong view adds a forward pass through the backbone); co-teaching over one group of 128 clips, ranking
passes included, both models. The machine and load average are written with the numbers.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_feature_cache import cpu_name  # noqa: E402
from source_training import import_training  # noqa: E402


def fill_cache(config) -> float:
    """Every training frame's backbone features into the cache (what the grid's first cells do)."""
    import torch

    from actiseg_ros.training.data import SegmentClips
    from actiseg_ros.training.feature_cache import FeatureCache
    from actiseg_ros.training.modeling.image_encoder import ImageEncoder

    started = time.monotonic()
    torch.set_num_threads(config.threads or 1)
    encoder = ImageEncoder(config.model.backbone).eval()
    from actiseg_ros.training.checkpoint import read_init_weights

    state = read_init_weights(config.init_from, config.model)["model"]
    prefix = "segmenter.image_encoder."
    encoder.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    cache = FeatureCache(config.feature_cache, encoder, config.model.input_hw, config.model.backbone)
    clips = SegmentClips(config.data_root, config.train_split, config.model.input_hw)
    for index, segment in enumerate(clips.segments):
        clips.frames_per_clip = len(segment.sparse_frames)  # every frame once (more would repeat frames)
        sample = clips[index]
        cache.features(sample.image_files, sample.images)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--cache", required=True, type=Path)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--methods", default="")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()

    import_training()
    from actiseg_ros.evaluation.eval_cli import evaluate
    from actiseg_ros.training.robustness_cell import infer_predictions
    from actiseg_ros.training.robustness_grid import Cell, load_grid
    from actiseg_ros.training.train import train

    grid = load_grid("standard")
    methods = [m.name for m in grid.methods if not args.methods or m.name in args.methods.split(",")]
    results = {"machine": {"cpu": cpu_name(), "cpus": os.cpu_count()}, "data": str(args.data), "methods": {}}
    base = dataclasses.replace(grid.train_config(Cell("baseline", "clean", 0), args.data.resolve()),
                               feature_cache=str(args.cache.resolve()))
    results["fill_cache_seconds"] = round(fill_cache(base), 1)
    print("cache filled in %.1f s" % results["fill_cache_seconds"], flush=True)
    with tempfile.TemporaryDirectory() as work:
        for method in methods:
            config = dataclasses.replace(grid.train_config(Cell(method, "clean", 0), args.data.resolve()),
                                         feature_cache=str(args.cache.resolve()), log_every=1,
                                         checkpoint_every=10 ** 6)
            steps = args.steps
            if method == "npn":
                config.loss.npn.warmup_epochs = 0
            if method == "coteaching":  # one group: 128 clips x keep 0.95 / batch 4 = 31 steps, ranking included
                steps = 31
            config = dataclasses.replace(config, max_steps=steps)
            run_dir = Path(work) / method
            load = os.getloadavg()
            started = time.monotonic()
            train(config, run_dir, log=lambda *a: None)
            wall = time.monotonic() - started
            with open(run_dir / "train_log.csv", newline="") as handle:
                seconds = [float(r["seconds"]) for r in csv.DictReader(handle)]
            skip = 0 if method == "coteaching" else 3
            per_step = (seconds[-1] - (seconds[skip - 1] if skip else 0.0)) / (steps - skip)
            entry = {"seconds_per_step": round(per_step, 3), "setup_seconds": round(wall - seconds[-1], 1),
                     "steps": steps, "load_before": [round(x, 2) for x in load],
                     "load_after": [round(x, 2) for x in os.getloadavg()]}
            if method == "baseline":
                started = time.monotonic()
                infer_predictions(run_dir / "model.pt", args.data, grid.eval_split, run_dir / "pred", config.threads)
                entry["infer_seconds"] = round(time.monotonic() - started, 1)
                started = time.monotonic()
                evaluate(run_dir / "pred", args.data, grid.eval_split)
                entry["eval_seconds"] = round(time.monotonic() - started, 1)
            results["methods"][method] = entry
            print(method, entry, flush=True)
    results["date_utc"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
