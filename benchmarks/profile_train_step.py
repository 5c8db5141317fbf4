"""Where a training step's time goes (cProfile over real steps of `actiseg train`'s loop).

    .venv/bin/python benchmarks/profile_train_step.py --config robustness_standard --steps 30 \
        --out benchmarks/results/profile_train_step.txt [--set feature_cache=/tmp/cache ...]

Runs the source tree's training loop (benchmarks/source_training.py) for --steps steps into a temporary run
folder and writes the cumulative-time table of the functions that matter, the machine and the load average.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from source_training import import_training  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--top", type=int, default=45)
    args = parser.parse_args()

    import_training()
    from actiseg_ros.training.config import load_config
    from actiseg_ros.training.train import train
    from actiseg_ros.training.train_cli import parse_overrides, resolve_config_path

    overrides = parse_overrides(args.set)
    overrides["max_steps"] = args.steps
    config = load_config([resolve_config_path(c) for c in args.config], overrides)
    load_before = os.getloadavg()
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory() as run_dir:
        started = time.monotonic()
        profiler.enable()
        train(config, run_dir, log=lambda *a: None)
        profiler.disable()
        wall = time.monotonic() - started
    buffer = io.StringIO()
    stats = pstats.Stats(profiler, stream=buffer).sort_stats("cumulative")
    stats.print_stats(args.top)
    buffer.write("\n--- the project's own functions (training/, actiseg_ros/) by cumulative time ---\n")
    stats.print_stats(r"/training/|actiseg_ros/|run_backward|conv2d|linear|clip_grad|adamw|np\.load|_read", args.top)
    header = ["profile of %d training steps (train() from start to saved model, incl. model build and init)"
              % args.steps,
              "config: %s; set: %s" % (" + ".join(args.config), " ".join(args.set) or "-"),
              "machine: %s, %d CPU(s), torch threads %s; load average before %.2f %.2f %.2f, after %.2f %.2f %.2f"
              % (platform.processor() or platform.machine(), os.cpu_count(), config.threads,
                 *load_before, *os.getloadavg()),
              "date: %s UTC; wall %.1f s" % (time.strftime("%Y-%m-%d %H:%M", time.gmtime()), wall), ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(header) + buffer.getvalue())
    print("\n".join(header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
