"""Two cameras, one engine: per-camera rate and latency of one perception node serving both, and its resident
memory against two single-camera nodes.

    python benchmarks/bench_multicamera.py --model models/default --json benchmarks/results/bench_multicamera.json

Both configurations run the same two camera streams: two replay_node processes publishing 640x480 rgb8
synthetic streams (seeds 0 and 1, preloaded, looping) at --rate Hz on head/image_raw and wrist/image_raw for
--seconds, with the action "cut onion with knife" (onion, knife and the two hands: K = 4), every candidate
active (positive_gate 1e-6), ONNX Runtime on the CPU.
1. One node: perception_node with cameras [head, wrist] (one model, one engine; frames of both cameras that
   wait together run as one batch). Outputs on /actiseg/head/objects and /actiseg/wrist/objects.
2. Two nodes: two single-camera perception_node processes (actiseg_head, actiseg_wrist), each remapped to its
   camera, each with its own model and engine.
This process subscribes to the objects topics over DDS (the product's Fast DDS profile) and records, per
output, the arrival time minus the camera stamp (end-to-end latency); the first two seconds are left out.
Resident memory is each node's VmRSS from /proc/<pid>/status, sampled every 0.5 s while the streams run
(median and maximum per process; the two nodes' medians are summed).

Targets (2-core CPU): >= 14 Hz per camera, p95 <= 150 ms, one node's RSS <= 60% of the two nodes' together.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench_node import load_average, machine_info, start_run  # benchmarks/ is this script's folder

from actiseg_ros.ros import names
from actiseg_ros.tools import run_analysis
from actiseg_ros.tools.processes import PERCEPTION_MODULE, REPLAY_MODULE, ChildNode, read_manifest, wait_until

CAMERAS = ("head", "wrist")
ACTION = "cut onion with knife"  # onion, knife + the two hands: K = 4
EVERY_OBJECT_GATE = 1e-6  # every candidate active, so mask post-processing runs at its full cost
WARM_UP_S = 2.0


def rss_kib(pid: int) -> int | None:
    """VmRSS of a process in KiB, None once it is gone."""
    try:
        for line in Path("/proc/%d/status" % pid).read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def node_params(model: Path, threads: int, **extra) -> dict:
    return dict({"model_dir": str(model), "backend": "ort-cpu", "threads": threads, "action": ACTION,
                 "positive_gate": EVERY_OBJECT_GATE}, **extra)


def run_configuration(label: str, nodes: list, objects_topics: dict, args, logs: Path) -> dict:
    """Start the node processes (name, params, remaps), wait until each is active, play both camera streams,
    sample memory; -> per-camera numbers and per-node memory."""
    from actiseg_ros.tools.collector import OutputCollector

    collector = OutputCollector("actiseg_bench_" + label, objects_topics=list(objects_topics.values()))
    processes, replays, rss = {}, {}, {}
    try:
        for name, params, remaps in nodes:
            processes[name] = ChildNode(PERCEPTION_MODULE, logs / ("%s_%s.log" % (label, name)), params,
                                        remaps=remaps)
        for name, process in processes.items():
            if not wait_until(lambda: not process.alive() or collector.lifecycle_state(name) == "active", 180) \
                    or not process.alive():
                raise SystemExit("%s did not become active:\n%s" % (name, process.log_tail()))
        count = int(round(args.rate * args.seconds))
        for seed, camera in enumerate(CAMERAS):
            replays[camera] = ChildNode(
                REPLAY_MODULE, logs / ("%s_replay_%s.log" % (label, camera)),
                {"source": "synthetic", "seed": seed, "width": args.width, "height": args.height,
                 "rate": float(args.rate), "count": count, "loop": True, "loop_frames": 60, "frame_id": camera,
                 "action_script": [""], "manifest": str(logs / ("%s_%s.jsonl" % (label, camera)))},
                remaps={names.IMAGE_TOPIC: names.camera_topic(camera)})
        deadline = time.monotonic() + args.seconds + 120
        load_during = []
        while any(r.alive() for r in replays.values()) and time.monotonic() < deadline:
            for name, process in processes.items():
                value = rss_kib(process.pid)
                if value is not None:
                    rss.setdefault(name, []).append(value)
            load_during.append(load_average())
            time.sleep(0.5)
        for camera, replay in replays.items():
            code = replay.wait(10)
            if code != 0:
                raise SystemExit("replay %s failed (exit %s):\n%s" % (camera, code, replay.log_tail()))
        collector.wait_quiet(quiet=1.5, timeout=30)
    finally:
        for replay in replays.values():
            replay.stop()
        for process in processes.values():
            process.stop()
        records = collector.snapshot()
        collector.close()

    cameras = {}
    for camera in CAMERAS:
        _header, frames, _actions = read_manifest(logs / ("%s_%s.jsonl" % (label, camera)))
        mine = {stamp: record for stamp, record in records.items() if record.get("topic") == objects_topics[camera]}
        matched = run_analysis.match_outputs(frames, mine)
        warm = [(f, r) for f, r in matched if f["index"] >= WARM_UP_S * args.rate and "received" in r]
        latency = run_analysis.latency_ms(warm)
        span = (frames[-1]["stamp_ns"] - frames[0]["stamp_ns"]) / 1e9
        batch_sizes = [r["objects"].get("batch_size", 1) for _f, r in warm]
        segmenter = [r["objects"]["timings_ms"].get("segmenter") for _f, r in warm]
        cameras[camera] = {
            "frames_published": len(frames), "camera_hz": (len(frames) - 1) / span if span > 0 else None,
            "frames_segmented": len(matched), "hz": run_analysis.output_rate(warm),
            "latency_ms_p50": run_analysis.percentile(latency, 50),
            "latency_ms_p95": run_analysis.percentile(latency, 95),
            "latency_ms_max": run_analysis.percentile(latency, 100),
            "segmenter_ms_p50": run_analysis.percentile([v for v in segmenter if v is not None], 50),
            "batch_sizes": {str(size): batch_sizes.count(size) for size in sorted(set(batch_sizes))},
            "frame_ids_ok": all(r["objects"]["frame_id"] == camera for _f, r in matched)}
    memory = {name: {"rss_mib_median": float(np.median(values)) / 1024, "rss_mib_max": max(values) / 1024,
                     "samples": len(values)} for name, values in rss.items()}
    loads = [entry[0] for entry in load_during if entry]
    return {"cameras": cameras, "memory": memory,
            "load_average_1min_during": [min(loads), max(loads)] if loads else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="exported model folder (default: the installed models/default)")
    parser.add_argument("--json", default="benchmarks/results/bench_multicamera.json")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--rate", type=float, default=15.0, help="Hz of each camera")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: one per core)")
    args = parser.parse_args()

    model, logs, load_before = start_run(args.model, "bench_multicamera")

    one = run_configuration(
        "one_node", [(names.NODE_NAME, node_params(model, args.threads, cameras=list(CAMERAS)), None)],
        {camera: names.resolve(names.output_topic("objects", camera)) for camera in CAMERAS}, args, logs)
    two = run_configuration(
        "two_nodes", [("actiseg_" + camera, node_params(model, args.threads),
                       {"__node": "actiseg_" + camera, names.IMAGE_TOPIC: names.camera_topic(camera)})
                      for camera in CAMERAS],
        {camera: names.resolve(names.output_topic("objects"), node="actiseg_" + camera) for camera in CAMERAS},
        args, logs)

    one_rss = one["memory"][names.NODE_NAME]["rss_mib_median"]
    two_rss = sum(m["rss_mib_median"] for m in two["memory"].values())
    ratio = one_rss / two_rss if two_rss else None
    worst_hz = min(c["hz"] for c in one["cameras"].values())
    p95s = [c["latency_ms_p95"] for c in one["cameras"].values()]
    worst_p95 = None if None in p95s else max(p95s)
    result = {
        "machine": machine_info(load_before),
        "model": str(model), "backend": "ort-cpu", "threads": args.threads, "action": ACTION, "k": 4,
        "positive_gate": EVERY_OBJECT_GATE,
        "stream": {"cameras": list(CAMERAS), "width": args.width, "height": args.height, "rate": args.rate,
                   "seconds": args.seconds, "warm_up_s": WARM_UP_S},
        "one_node": one, "two_nodes": two,
        "rss_mib": {"one_node": one_rss, "two_nodes_sum": two_rss, "ratio": ratio},
        "targets": {"hz_min": 14.0, "latency_ms_p95_max": 150.0, "rss_ratio_max": 0.6},
        "targets_met": {"hz": worst_hz >= 14.0, "latency_p95": worst_p95 is not None and worst_p95 <= 150.0,
                        "rss": ratio is not None and ratio <= 0.6},
        "logs": str(logs),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    for label, run in (("one node, two cameras", one), ("two single-camera nodes", two)):
        for camera, numbers in run["cameras"].items():
            print("%s, %s: %.1f Hz out of %.1f Hz in, latency p50 %.1f / p95 %.1f ms, segmenter p50 %.1f ms, "
                  "batch sizes %s" % (label, camera, numbers["hz"], numbers["camera_hz"] or 0,
                                      numbers["latency_ms_p50"] or -1, numbers["latency_ms_p95"] or -1,
                                      numbers["segmenter_ms_p50"] or -1, numbers["batch_sizes"]))
        print("%s: RSS %s; load average during %s" % (label, ", ".join(
            "%s %.0f MiB (max %.0f)" % (n, m["rss_mib_median"], m["rss_mib_max"]) for n, m in run["memory"].items()),
            run["load_average_1min_during"]))
    print("RSS one node / two nodes: %.0f / %.0f MiB = %.2f; targets met: %s; wrote %s"
          % (one_rss, two_rss, ratio or -1, result["targets_met"], args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
