"""End-to-end latency and rate of the perception node over real DDS, against the bare engine.

    python benchmarks/bench_node.py --model models/default --json benchmarks/results/bench_node.json

1. Bare engine (in this process, nothing else running): the segmenter graph alone on a prepared input
   (`actiseg bench`'s 'engine' path) and the whole camera path Predictor.predict (letterbox + engine + masks
   at camera size), for the K prompts of the benchmark action.
2. The node: perception_node and replay_node as separate processes; the replay publishes a 640x480 rgb8
   synthetic stream at 30 Hz (preloaded, looping) for --seconds; this process subscribes to /actiseg/objects
   over DDS with the product's Fast DDS profile and records, per output, arrival time minus the camera stamp.
   The bare engine is timed before and after the node run, back to back and paced at the camera rate; the
   faster p50 of each pair is used.
   Overhead = node end-to-end p50 - bare engine p50: conversion, letterbox, mask post-processing, message
   building, two DDS hops (camera -> node -> subscriber), and the age of the frame when the inference thread
   takes it (when the model is slower than the camera, the newest frame waited on average half a camera
   period). Because other load on the machine moves the engine time between runs, the overhead is also given
   paired per frame: the frame's end-to-end latency minus the engine time the node measured for that frame
   (the node reports its stage times in /actiseg/objects), with and without the frame's wait. The DDS part
   is split into the camera hop (the node's arrival_age: stamp to the node's callback) and the objects
   message's way out (what is left of the latency after the node's stages).

Every candidate is forced active (positive_gate 1e-6 in the node, 0 in the bare Predictor, as `actiseg bench`
does; the node's parameter value 0 means the model card's gate), so mask post-processing is timed at its full
cost whatever the model's scores.

Targets (2-core CPU, ONNX Runtime, default model): output >= 15 Hz, p95 <= 100 ms, overhead p50 <= 8 ms.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from actiseg_ros.tools import run_analysis
from actiseg_ros.tools.processes import read_manifest, run_replay_session

ACTION = "cut onion on chopping board with knife"  # 3 named objects + 2 hands = K 5
EVERY_OBJECT_GATE = 1e-6  # the node's positive_gate that every score passes (0 would be the model card's gate)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(load_before: list) -> dict:
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "arch": platform.machine(),
            "python": platform.python_version(), "load_average_before": load_before,
            "load_average_after": load_average()}


def load_average() -> list:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def start_run(model_arg: str | None, name: str) -> tuple[Path, Path, list]:
    """What a node benchmark does before it starts anything: the product's Fast DDS profile for this process,
    the model folder (model_arg, or the installed models/default), a new log folder actiseg_<name>_*, and the
    load average before the run. Returns (model, logs, load_before)."""
    from actiseg_ros.dds import use_default_profile

    use_default_profile()
    if model_arg:
        model = Path(model_arg)
    else:
        from actiseg_ros.paths import models_dir

        model = models_dir() / "default"
    logs = Path(tempfile.mkdtemp(prefix="actiseg_%s_" % name))
    return model, logs, load_average()


def bench_engine(model: Path, width: int, height: int, iterations: int, threads: int, rate: float) -> dict:
    from actiseg_ros.inference.bench import camera_frame, time_calls
    from actiseg_ros.inference.predictor import Predictor
    from actiseg_ros.ros.action_parsing import build_prompts, parse_action

    predictor = Predictor(model, backend="ort-cpu", threads=threads, positive_gate=0.0)
    try:
        command = parse_action(ACTION, predictor.card.raw.get("vocabulary") or None, ("left hand", "right hand"))
        predictor.set_prompts(build_prompts(command, predictor.card.prompt_template))
        tokens, mask = predictor.prompt_features
        images = np.zeros((1, 3) + tuple(predictor.card.input_hw), np.float32)
        engine = time_calls(lambda: predictor.segmenter.run(images, tokens, mask), iterations, 5)
        paced = time_calls(lambda: predictor.segmenter.run(images, tokens, mask), iterations, 5, period=1.0 / rate)
        frame = camera_frame(width, height)
        camera = time_calls(lambda: predictor.predict(frame), iterations, 5)
        return {"k": len(command.objects), "objects": list(command.objects), "engine": engine, "paced": paced,
                "camera": camera,
                "input_hw": list(predictor.card.input_hw), "providers": predictor.segmenter.providers}
    finally:
        predictor.close()


def bench_node(model: Path, width: int, height: int, rate: float, seconds: float, threads: int, logs: Path,
               action: str = ACTION) -> dict:
    from actiseg_ros.tools.collector import OutputCollector

    collector = OutputCollector("actiseg_bench")
    count = int(round(rate * seconds))
    records, diagnostics = run_replay_session(
        collector, logs, {"model_dir": str(model), "backend": "ort-cpu", "threads": threads, "action": action,
                          "positive_gate": EVERY_OBJECT_GATE},
        {"source": "synthetic", "seed": 3, "width": width, "height": height, "rate": float(rate), "count": count,
         "loop": True, "loop_frames": 60, "action_script": [""], "manifest": str(logs / "manifest.jsonl")},
        deadline=time.monotonic() + 120 + seconds + 180)
    _header, frames, _actions = read_manifest(logs / "manifest.jsonl")
    matched = run_analysis.match_outputs(frames, records)
    warm = [(f, r) for f, r in matched if f["index"] >= rate and "received" in r]  # skip the first second
    latency = run_analysis.latency_ms(warm)
    stages = {}
    for _frame, record in warm:
        for stage, value in record["objects"].get("timings_ms", {}).items():
            stages.setdefault(stage, []).append(value)
    engine = np.array(stages.get("segmenter", [np.nan] * len(warm)))
    waiting = np.array(stages.get("waiting", [0.0] * len(warm)))
    arrival_age = np.array(stages.get("arrival_age", [np.nan] * len(warm)))
    # The node's own work on the frame: every stage but the camera hop and the wait for the inference thread
    # (publish_images, the mask and label messages, included; the objects message itself is published after).
    node_work = (sum(np.array(v) for k, v in stages.items() if k not in ("waiting", "arrival_age")) if stages
                 else np.zeros(len(warm)))
    span = (frames[-1]["stamp_ns"] - frames[0]["stamp_ns"]) / 1e9
    return {"frames_published": len(frames), "camera_hz": (len(frames) - 1) / span if span > 0 else None,
            "frames_segmented": len(matched), "drops": len(frames) - len(matched),
            "hz": run_analysis.output_rate(matched), "latency_ms_p50": run_analysis.percentile(latency, 50),
            "latency_ms_p95": run_analysis.percentile(latency, 95),
            "latency_ms_max": run_analysis.percentile(latency, 100),
            "stage_ms_p50": {k: float(np.median(v)) for k, v in stages.items()},
            "paired_overhead_ms_p50": run_analysis.percentile(_finite(latency - engine), 50),
            "paired_overhead_without_wait_ms_p50": run_analysis.percentile(_finite(latency - engine - waiting), 50),
            "transport_and_publish_ms_p50": run_analysis.percentile(latency - waiting - node_work, 50),
            # None (not NaN, which is not JSON) when the node did not report its arrival_age
            "camera_hop_ms_p50": run_analysis.percentile(_finite(arrival_age), 50),
            "output_hop_ms_p50": run_analysis.percentile(_finite(latency - arrival_age - waiting - node_work), 50),
            "node_frames_dropped": int(diagnostics.get("frames_dropped") or 0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="exported model folder (default: the installed models/default)")
    parser.add_argument("--json", default="benchmarks/results/bench_node.json")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--iterations", type=int, default=100, help="timed engine calls")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: one per core)")
    parser.add_argument("--plumbing-only", action="store_true",
                        help="run the node with no action, so it segments nothing and publishes empty outputs: what "
                             "DDS, the hand-off to the inference thread and publishing cost alone (no engine timing)")
    args = parser.parse_args()

    model, logs, load_before = start_run(args.model, "bench_node")
    if args.plumbing_only:
        return plumbing_only(model, args, logs, load_before)
    engines = []

    def time_engine(when: str) -> None:
        engines.append(bench_engine(model, args.width, args.height, args.iterations, args.threads, args.rate))
        print("engine %s the node run (K=%d): p50 %.1f ms, p95 %.1f ms back to back, p50 %.1f ms paced at %g Hz; "
              "camera path p50 %.1f ms" % (when, engines[-1]["k"], engines[-1]["engine"]["p50_ms"],
                                           engines[-1]["engine"]["p95_ms"], engines[-1]["paced"]["p50_ms"], args.rate,
                                           engines[-1]["camera"]["p50_ms"]))

    time_engine("before")
    node = bench_node(model, args.width, args.height, args.rate, args.seconds, args.threads, logs)
    time_engine("after")
    # Other load on a shared VM only ever slows a run down (the bare engine's p50 moved between 14 and 34 ms
    # from run to run): the faster of the two measurements is the closer to the engine's cost, and gives the
    # larger, conservative overhead.
    engine = min(engines, key=lambda e: e["engine"]["p50_ms"])
    overhead = None if node["latency_ms_p50"] is None else node["latency_ms_p50"] - engine["engine"]["p50_ms"]
    # The node runs the graph once per camera frame, idle in between: the paced timing is its like-for-like
    # baseline (reported beside the formal overhead, which the target is defined on).
    paced_p50 = min(e["paced"]["p50_ms"] for e in engines)
    overhead_paced = None if node["latency_ms_p50"] is None else node["latency_ms_p50"] - paced_p50
    result = {
        "machine": machine_info(load_before),
        "model": {"dir": str(model), "input_hw": engine["input_hw"],
                  "training_steps": _training_steps(model)},
        "backend": "ort-cpu", "threads": args.threads, "positive_gate": 0.0,
        "stream": {"width": args.width, "height": args.height, "rate": args.rate, "seconds": args.seconds},
        "action": ACTION, "k": engine["k"],
        "engine_ms": {"p50": engine["engine"]["p50_ms"], "p95": engine["engine"]["p95_ms"]},
        "engine_ms_p50_before_and_after": [e["engine"]["p50_ms"] for e in engines],
        "engine_paced_ms_p50_before_and_after": [e["paced"]["p50_ms"] for e in engines],
        "overhead_vs_paced_engine_ms_p50": overhead_paced,
        "camera_path_ms": {"p50": engine["camera"]["p50_ms"], "p95": engine["camera"]["p95_ms"]},
        "node": node,
        "overhead_ms_p50": overhead,
        "targets": {"hz_min": 15.0, "latency_ms_p95_max": 100.0, "overhead_ms_p50_max": 8.0},
    }
    result["targets_met"] = {"hz": node["hz"] >= 15.0,
                             "latency_p95": node["latency_ms_p95"] is not None and node["latency_ms_p95"] <= 100.0,
                             "overhead_p50": overhead is not None and overhead <= 8.0}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print("node: %.1f Hz out of %.1f Hz in, latency p50 %.1f ms / p95 %.1f ms, overhead p50 %.1f ms (%.1f ms against "
          "the paced engine), %d of %d dropped"
          % (node["hz"], node["camera_hz"] or 0, node["latency_ms_p50"] or -1, node["latency_ms_p95"] or -1,
             overhead if overhead is not None else -1, overhead_paced if overhead_paced is not None else -1,
             node["drops"], node["frames_published"]))
    print("per frame (p50): %s; paired overhead %.1f ms (%.1f ms without the frame's wait for the inference thread); "
          "DDS + publishing %.1f ms (camera hop %.1f, objects message out %.1f)"
          % (", ".join("%s %.1f" % kv for kv in node["stage_ms_p50"].items()), node["paired_overhead_ms_p50"] or -1,
             node["paired_overhead_without_wait_ms_p50"] or -1, node["transport_and_publish_ms_p50"] or -1,
             node["camera_hop_ms_p50"] or -1, node["output_hop_ms_p50"] or -1))
    print("targets met: %s; wrote %s" % (result["targets_met"], args.json))
    return 0


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def plumbing_only(model: Path, args, logs: Path, load_before: list) -> int:
    node = bench_node(model, args.width, args.height, args.rate, args.seconds, args.threads, logs, action="")
    result = {"machine": machine_info(load_before), "plumbing_only": True, "node": node,
              "stream": {"width": args.width, "height": args.height, "rate": args.rate, "seconds": args.seconds}}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print("node with no action: %.1f Hz out, latency p50 %.2f ms / p95 %.2f ms; per frame (p50): %s; objects message "
          "out %.2f ms; wrote %s" % (node["hz"], node["latency_ms_p50"] or -1, node["latency_ms_p95"] or -1,
                                     ", ".join("%s %.2f" % kv for kv in node["stage_ms_p50"].items()),
                                     node["output_hop_ms_p50"] or -1, args.json))
    return 0


def _training_steps(model: Path):
    try:
        return json.loads((model / "model_card.json").read_text())["training"]["info"].get("steps")
    except (OSError, KeyError, ValueError, TypeError):
        return None


if __name__ == "__main__":
    sys.exit(main())
