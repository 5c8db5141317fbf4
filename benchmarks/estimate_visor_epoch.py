"""An ESTIMATE of the VISOR recipe's time per epoch on one H200, from measurements on this (CPU) machine.

    nice python benchmarks/estimate_visor_epoch.py --data SYNTH_ROOT [--steps 3] [--threads 2]

No GPU was measured for this. The script measures, here:
  A. torch eager fp32 forward of the default-recipe segmenter at batch 1, K 4, 192x320 with random inputs:
     exactly the case benchmarks/results/gpu_latency_h200.md timed on the H200 (p50 7.60 ms);
  B. real training steps of training/configs/visor.yaml (288x512, 8 clips x 5 frames, trainable backbone)
     on SYNTH_ROOT (any ActionVOS-layout data; here a synthetic VISOR-format set through `actiseg import
     visor`), fp32 (the step clock starts after set-up, so every step counts);
  C. the data loading of one such step (40 frames decoded and letterboxed, no cache / warm frame cache).
and scales: H200 step ~ B / (A_cpu / A_h200). At batch 1 the H200 is launch-bound (its latency barely moves
from K 1 to K 8), so its advantage on a 40-frame training step is larger than A's ratio: the scaled step
is an upper bound. A lower bound is the launch floor: forward + backward + optimiser ~ 3 forward launches of
7.6 ms. Steps per epoch: 4.8k VISOR training sequences / 8 clips. Writes benchmarks/results/visor_epoch_estimate.*.
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

import numpy as np
import torch

import source_training  # benchmarks/ is this script's folder

REPO = Path(__file__).resolve().parent.parent
H200_FORWARD_MS = 7.60  # gpu_latency_h200.md: torch-cuda-eager-fp32, K 4, p50
VISOR_TRAIN_SEQUENCES = 4800  # ActionVOS's VISOR train split (about 4.8k sequences)


def forward_ms(threads: int, iterations: int = 30) -> float:
    from actiseg_ros.training.modeling.actiseg_model import ActiSegSegmenter, ModelConfig

    torch.set_num_threads(threads)
    segmenter = ActiSegSegmenter(ModelConfig(pretrained=False)).eval()
    h, w = ModelConfig().input_hw
    images, tokens, mask = torch.randn(1, 3, h, w), torch.randn(1, 4, 32, 384), torch.ones(1, 4, 32)
    samples = []
    with torch.no_grad():
        for i in range(iterations + 5):
            start = time.perf_counter()
            segmenter(images, tokens, mask)
            if i >= 5:
                samples.append((time.perf_counter() - start) * 1000)
    return float(np.median(samples))


def train_steps(data: Path, precision: str, steps: int, threads: int) -> list:
    from actiseg_ros.training.config import load_config
    from actiseg_ros.training.train import train

    config = load_config(REPO / "training" / "configs" / "visor.yaml",
                         {"data_root": str(data), "max_steps": steps, "precision": precision, "threads": threads,
                          "frame_cache": "", "loader_workers": 0, "log_every": 1, "checkpoint_every": 1000})
    with tempfile.TemporaryDirectory() as out:
        train(config, out, log=lambda *_: None)
        with open(Path(out) / "train_log.csv", newline="") as handle:
            seconds = [float(r["seconds"]) for r in csv.DictReader(handle)]
    return [round(b - a, 2) for a, b in zip([0.0] + seconds, seconds)]  # the clock starts after the set-up


def loading_ms(data: Path, repeats: int = 3) -> dict:
    from actiseg_ros.training.data import SegmentClips

    out = {}
    with tempfile.TemporaryDirectory() as cache:
        for name, frame_cache in (("decode", ""), ("cache_cold", cache), ("cache_warm", cache)):
            clips = SegmentClips(data, "train", (288, 512), frames_per_clip=5, jitter=0.2, frame_cache=frame_cache)
            indices = [i % len(clips) for i in range(8)]
            times = []
            for _ in range(repeats if name != "cache_cold" else 1):
                start = time.perf_counter()
                frames = sum(clips[i].images.shape[0] for i in indices)
                times.append((time.perf_counter() - start) * 1000)
            out[name] = {"ms_per_step": round(float(np.median(times)), 1), "frames": frames}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--precisions", default="fp32", help="comma-separated; bf16 is slow on CPUs without it")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    source_training.import_training()
    load_before = os.getloadavg()
    cpu_forward = forward_ms(args.threads)
    steps = {p: train_steps(args.data, p, args.steps, args.threads) for p in args.precisions.split(",")}
    loading = loading_ms(args.data)
    cpu_step = float(np.median(steps["fp32"]))
    ratio = cpu_forward / H200_FORWARD_MS
    per_epoch = VISOR_TRAIN_SEQUENCES // 8
    upper_step = cpu_step / ratio
    lower_step = 3 * H200_FORWARD_MS / 1000
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(), "threads": args.threads,
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "measured_here": {"forward_b1_k4_192x320_ms": round(cpu_forward, 2), "visor_step_s": steps,
                          "loading_one_step": loading},
        "h200_reference": {"forward_b1_k4_192x320_ms": H200_FORWARD_MS, "source": "gpu_latency_h200.md"},
        "estimate": {"cpu_to_h200_ratio_at_batch1": round(ratio, 1), "steps_per_epoch": per_epoch,
                     "h200_step_s_upper": round(upper_step, 3), "h200_step_s_lower": round(lower_step, 3),
                     "epoch_minutes_upper": round(per_epoch * upper_step / 60, 1),
                     "epoch_minutes_lower": round(per_epoch * lower_step / 60, 1)},
        "note": "ESTIMATE: no GPU was available; see the module docstring for the scaling.",
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "visor_epoch_estimate.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
