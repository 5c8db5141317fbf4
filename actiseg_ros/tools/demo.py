"""`actiseg demo`: the product's main job, end to end on this machine.

Starts the perception node and the replay node as real ROS 2 processes, plays the built-in synthetic kitchen
stream (one scene, several narrated actions, sent as action commands when each begins), records every
output over DDS, then writes
  - an overlay video (MP4; GIF when OpenCV has no MP4 writer) and a still PNG of the overlay,
  - a JSON report: hz, latency_ms_p50, latency_ms_p95, drops, mean_iou, per-action IoU against the stream's
    ground truth (the positive objects of the action under way), plus the details behind them,
and prints a short summary.

    actiseg demo [--json docs/demo/report.json] [--video docs/demo/overlay.mp4] [--model DIR]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from actiseg_ros.data.synth_domain import DOMAINS
from actiseg_ros.tools import run_analysis
from actiseg_ros.tools.processes import read_manifest, run_replay_session

DEFAULT_DIR = Path("docs/demo")


def parse_size(text: str) -> tuple:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError("size must be WIDTHxHEIGHT, e.g. 640x360, got %r" % text) from None
    if width < 32 or height < 32:
        raise argparse.ArgumentTypeError("size must be at least 32x32, got %r" % text)
    return width, height


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", default=str(DEFAULT_DIR / "report.json"), help="report file (default: %(default)s)")
    parser.add_argument("--video", default=str(DEFAULT_DIR / "overlay.mp4"),
                        help="overlay video; .mp4 (GIF written instead when no MP4 writer works) or .gif "
                             "(default: %(default)s)")
    parser.add_argument("--still", default=str(DEFAULT_DIR / "overlay.png"), help="one overlay frame as PNG")
    parser.add_argument("--model", default=None, help="exported model folder (default: the installed models/default)")
    parser.add_argument("--backend", default="auto", help="inference backend of the node (default: auto)")
    parser.add_argument("--seed", type=int, default=3, help="synthetic scene seed (default: %(default)s)")
    parser.add_argument("--domain", default="kitchen", choices=sorted(DOMAINS),
                        help="synthetic kitchen: the shipped model's, or the held-out kitchen_b (default: %(default)s)")
    parser.add_argument("--size", type=parse_size, default=(640, 360), help="camera size WxH (default: 640x360)")
    parser.add_argument("--rate", type=float, default=30.0, help="camera rate in Hz (default: %(default)s)")
    parser.add_argument("--actions", type=int, default=4, help="actions in the script (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    parser.add_argument("--logs", default=None, help="folder for the nodes' logs (default: a temporary folder)")


def default_model() -> Path:
    from actiseg_ros.paths import models_dir

    return models_dir() / "default"


def config_file():
    from actiseg_ros.paths import config_file as shipped

    try:
        path = shipped("perception.yaml")
    except FileNotFoundError:
        return None
    return path if path.is_file() else None


def analyse(manifest_path, records: dict, stream) -> dict:
    """Report numbers from the manifest, the collected records and the synthetic stream (ground truth)."""
    from tqdm import tqdm

    header, frames, actions = read_manifest(manifest_path)
    matched = run_analysis.match_outputs(frames, records)
    rows = []
    for frame, record in tqdm(matched, desc="demo: scoring against ground truth", unit="frame", file=sys.stderr):
        if "mask" not in record or "objects" not in record:
            continue
        truth = stream.render(frame["source_index"])
        positives = [i for i, info in truth.objects.items() if info.positive]
        iou = run_analysis.mask_iou(record["mask"] > 0, np.isin(truth.labels, positives))
        rows.append((truth.narration, iou, record["objects"].get("action")))
    latency = run_analysis.latency_ms(matched)
    per_action = run_analysis.per_action_summary([(action, iou) for action, iou, _sent in rows])
    return {
        "hz": run_analysis.output_rate(matched),
        "latency_ms_p50": run_analysis.percentile(latency, 50),
        "latency_ms_p95": run_analysis.percentile(latency, 95),
        "drops": len(frames) - len(matched),
        "mean_iou": float(np.mean([iou for _a, iou, _s in rows])) if rows else None,
        "per_action": per_action,
        "frames_published": len(frames),
        "frames_segmented": len(matched),
        "frames_scored": len(rows),
        "frames_with_stale_action": sum(1 for action, _iou, sent in rows if sent != action),
        "actions_sent": [a["action"] for a in actions],
        "stream": {key: header.get(key) for key in ("seed", "domain", "width", "height", "rate", "actions")},
    }


def write_video(path: Path, jpegs: list, schedule: list, fps: float) -> Path:
    """Frames (JPEG bytes) shown per `schedule` -> MP4 at `path`, or a GIF next to it when no MP4 writer works."""
    path.parent.mkdir(parents=True, exist_ok=True)
    first = cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_COLOR)
    height, width = first.shape[:2]
    if path.suffix.lower() != ".gif":
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if writer.isOpened():
            decoded = {}
            for position in schedule:
                if position not in decoded:
                    decoded = {position: cv2.imdecode(np.frombuffer(jpegs[position], np.uint8), cv2.IMREAD_COLOR)}
                writer.write(decoded[position])
            writer.release()
            check = cv2.VideoCapture(str(path))
            readable = check.isOpened() and check.read()[0]
            check.release()
            if readable:
                return path
        path = path.with_suffix(".gif")
    from PIL import Image

    step = max(1, int(round(fps / 10)))  # GIFs at about 10 fps stay small
    frames = [Image.fromarray(cv2.cvtColor(cv2.imdecode(np.frombuffer(jpegs[p], np.uint8), cv2.IMREAD_COLOR),
                                           cv2.COLOR_BGR2RGB)) for p in schedule[::step]]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 * step / fps), loop=0)
    return path


def pick_still(matched_with_overlay: list) -> int:
    """Position of the overlay to show as the still: the frame with the most active objects, mid-stream on ties."""
    best, best_key = 0, None
    middle = len(matched_with_overlay) / 2
    for position, (_frame, record) in enumerate(matched_with_overlay):
        active = sum(1 for o in record.get("objects", {}).get("objects", []) if o.get("active"))
        key = (active, -abs(position - middle))
        if best_key is None or key > best_key:
            best, best_key = position, key
    return best


def machine() -> dict:
    import os

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version(), "system": platform.platform()}


def main(args) -> int:
    from actiseg_ros.data.synth import SceneStream
    from actiseg_ros.tools.collector import OutputCollector

    model = Path(args.model) if args.model else default_model()
    if not (model / "model_card.json").is_file():
        raise SystemExit("no exported model in %s; pass --model DIR (the output of `actiseg export`)" % model)
    logs = Path(args.logs) if args.logs else Path(tempfile.mkdtemp(prefix="actiseg_demo_"))
    logs.mkdir(parents=True, exist_ok=True)
    width, height = args.size
    print("demo: synthetic %s stream seed %d, %dx%d at %.0f Hz, model %s; logs in %s"
          % (args.domain, args.seed, width, height, args.rate, model, logs))
    began = time.monotonic()
    collector = OutputCollector("actiseg_demo", keep_masks=True, keep_overlay=True)
    manifest = logs / "manifest.jsonl"
    records, node_diagnostics = run_replay_session(
        collector, logs, {"model_dir": str(model), "backend": args.backend},
        {"source": "synthetic", "seed": args.seed, "domain": args.domain, "width": width, "height": height,
         "actions": args.actions,
         "rate": float(args.rate), "action_script": ["auto"], "action_objects": "scene", "manifest": str(manifest)},
        deadline=began + args.timeout, params_file=config_file())

    stream = SceneStream(seed=args.seed, size=(width, height), actions=args.actions, domain=args.domain)
    report = analyse(manifest, records, stream)
    report.update({"model": str(model), "backend": node_diagnostics.get("backend"),
                   "node_frames_dropped": int(node_diagnostics.get("frames_dropped") or 0),
                   "node_processing_ms_p50": float(node_diagnostics["processing_ms_p50"])
                   if node_diagnostics.get("processing_ms_p50") else None,
                   "machine": machine(), "logs": str(logs)})

    _header, frames, _actions = read_manifest(manifest)
    with_overlay = [(f, r) for f, r in run_analysis.match_outputs(frames, records) if "overlay_jpeg" in r]
    if with_overlay:
        schedule = run_analysis.video_schedule([f["index"] for f, _r in with_overlay], len(frames))
        jpegs = [r["overlay_jpeg"] for _f, r in with_overlay]
        report["video"] = str(write_video(Path(args.video), jpegs, schedule, args.rate))
        still = cv2.imdecode(np.frombuffer(jpegs[pick_still(with_overlay)], np.uint8), cv2.IMREAD_COLOR)
        Path(args.still).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(args.still), still)
        report["still"] = str(args.still)
    else:
        report["video"] = None
        print("demo: no overlay frames arrived; no video written", file=sys.stderr)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(summary(report, args.json))
    return 0 if report["frames_segmented"] else 1


def summary(report: dict, json_path) -> str:
    def number(value, fmt):
        return "-" if value is None else fmt % value

    lines = ["demo: %d of %d frames segmented (%d dropped), %s Hz, latency p50 %s ms / p95 %s ms, backend %s"
             % (report["frames_segmented"], report["frames_published"], report["drops"], number(report["hz"], "%.1f"),
                number(report["latency_ms_p50"], "%.0f"), number(report["latency_ms_p95"], "%.0f"),
                report.get("backend")),
             "demo: mean IoU vs ground truth %s" % number(report["mean_iou"], "%.3f")]
    for row in report["per_action"]:
        lines.append("  %-40s %4d frames  IoU %.3f" % (row["action"], row["frames"], row["iou"]))
    lines.append("demo: report %s, video %s" % (json_path, report.get("video")))
    return "\n".join(lines)


if __name__ == "__main__":
    cli = argparse.ArgumentParser(prog="actiseg demo")
    add_arguments(cli)
    sys.exit(main(cli.parse_args()))
