"""Speed of the synthetic data generator: frames per second at 256x256 and 480x854 (H x W).

    PYTHONPATH=. python benchmarks/bench_synth.py [--segments 40] [--seed 0]

For each size it renders the sparse frames of the first `--segments` planned segments of the default preset
(fresh renderer per scene, as `actiseg synth` does, so sprite and background set-up is included) and reports
  render:  RGB frame + label image + weight map per frame,
  +encode: the same plus JPEG (quality 95) and two PNG encodings in memory, i.e. everything but the disk.
Each is run --repeats times; the best run (least disturbed by other load) and the median are printed.
Planning (scene sampling and reference-resolution labels) is timed separately, per segment.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import cv2
import numpy as np

from actiseg_ros.data import synth
from actiseg_ros.data.synth_render import SceneRenderer

SIZES = ((256, 256), (854, 480))  # (W, H): 256x256 and 480x854 in H x W


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def bench_size(items, size, encode: bool) -> float:
    width, height = size
    frames = 0
    started = time.perf_counter()
    renderer = None
    for item in items:
        if renderer is None or renderer.scene is not item.scene_plan.scene:
            renderer = SceneRenderer(item.scene_plan.scene, width, height)
        images, labels, weights = synth.render_segment(item, renderer)
        if encode:
            for rgb, label, weight in zip(images, labels, weights):
                cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
                cv2.imencode(".png", label)
                cv2.imencode(".png", weight)
        frames += len(images)
    return frames / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; best and median are shown")
    args = parser.parse_args()
    preset = synth.PRESETS["default"]
    scenes = max(args.segments // preset.actions_per_scene, 1)
    probe = synth.Preset("bench", preset.size, scenes, 0, preset.actions_per_scene, preset.frames_per_segment,
                         preset.objects)
    started = time.perf_counter()
    plan = synth.plan_dataset(probe, args.seed)
    plan_seconds = time.perf_counter() - started
    items = plan.segments
    n_frames = sum(len(i.planned.frames) for i in items)
    print("machine: %s, %s, %d logical CPUs; numpy %s, OpenCV %s" % (
        cpu_name(), platform.machine(), os.cpu_count() or 0, np.__version__, cv2.__version__))
    print("workload: %d segments (%d scenes, %d frames) of the default preset, seed %d, one process" % (
        len(items), scenes, n_frames, args.seed))
    print("planning (scenes, actions, reference-size labels): %.1f ms per segment" % (1000 * plan_seconds / len(items)))
    for size in SIZES:
        bench_size(items[:2], size, encode=False)  # warm-up
        render = [bench_size(items, size, encode=False) for _ in range(args.repeats)]
        encoded = [bench_size(items, size, encode=True) for _ in range(args.repeats)]
        print("%4dx%-4d (HxW): render %6.1f frames/s (median %6.1f) | +encode %6.1f frames/s (median %6.1f)" % (
            size[1], size[0], max(render), float(np.median(render)), max(encoded), float(np.median(encoded))))


if __name__ == "__main__":
    main()
