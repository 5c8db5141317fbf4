"""Throughput and interruption safety of `actiseg import visor` on a synthetic VISOR-format set.

    nice python benchmarks/bench_import_visor.py [--videos 6] [--frames 70] [--jobs 2] [--work DIR]

Writes a VISOR-format input with test/visor_fixtures (1920x1080 JPEG frames, annotations_corrected JSON with
random polygon entities, EPIC-100 rows of overlapping actions, VISOR-HOS in-contact rows on half the frames),
then runs the installed `actiseg import visor` command:
  1. complete runs with --jobs 1 and --jobs N: wall time, source frames/s and written sparse frames/s (an
     action's frames are written once per action, so overlapping actions write some source frames twice),
     peak memory of the process tree (sum of VmRSS, sampled every 0.1 s);
  2. interrupted runs: SIGINT and SIGTERM sent once the stage folder holds about a third of the frames;
     checks the exit status, that ROOT does not exist, that no stage folder is left next to it, and that
     no worker process (nor multiprocessing's resource tracker) is left 10 s later.
Results go to benchmarks/results/bench_import_visor.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "test"))
from visor_fixtures import Frame, Hos, Row, Video, entity, write_visor  # noqa: E402

ACTISEG = str(Path(sys.executable).with_name("actiseg"))
NAMES = [("chopping board", 18), ("cup", 13), ("knife", 4), ("pan", 5), ("lid", 6), ("bowl", 7), ("sponge", 9),
         ("plate", 2), ("bag", 19), ("onion", 16)]


def random_polygon(rng, cx, cy, radius, points=24) -> list:
    angles = np.sort(rng.uniform(0, 2 * np.pi, points))
    radii = radius * rng.uniform(0.6, 1.0, points)
    return [[float(cx + r * np.cos(a)), float(cy + r * np.sin(a))] for a, r in zip(angles, radii)]


def synthetic_set(base: Path, videos: int, frames: int, seed: int = 0) -> tuple:
    """(visor_root, annotations_dir, source frame count)."""
    rng = np.random.default_rng(seed)
    all_videos, rows, hos = [], [], {"train": [], "val": []}
    for v in range(videos):
        name = "P%02d_%02d" % (v + 1, v + 1)
        split = "train" if v < videos - 1 else "val"
        video_frames = []
        for i in range(frames):
            ek = 1000 + 50 * i
            entities = []
            for hand, class_id in (("left hand", 300), ("right hand", 301)):
                entities.append(entity(hand, class_id, random_polygon(rng, rng.uniform(300, 1600),
                                                                      rng.uniform(600, 1000), 150)))
            for k in rng.choice(len(NAMES), 6, replace=False):
                polygons = [random_polygon(rng, rng.uniform(100, 1820), rng.uniform(100, 980), rng.uniform(60, 260))
                            for _ in range(int(rng.integers(1, 3)))]
                entities.append(entity(NAMES[k][0], NAMES[k][1], *polygons))
            rng.shuffle(entities)
            frame = Frame(ek, ek + 1, entities)
            video_frames.append(frame)
            if i % 2 == 0:  # an in-contact box around the first object
                poly = np.array(entities[0]["segments"][0])
                x0, y0 = np.maximum(poly.min(axis=0).astype(int), 0)
                x1, y1 = np.minimum(poly.max(axis=0).astype(int), [1919, 1079])
                hos[split].append(Hos("%s_frame_%010d.jpg" % (name, ek + 1), 2,
                                      [int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)],
                                      [[v for p in entities[0]["segments"][0] for v in p]]))
        all_videos.append(Video(name, split, video_frames))
        # actions of 6-15 sparse frames, starting every ~5 frames: they overlap, as EPIC-100 actions do
        start, index = 0, 1
        while start < frames - 2:
            length = int(rng.integers(6, 16))
            stop = min(start + length - 1, frames - 1)
            noun, class_id = NAMES[int(rng.integers(len(NAMES)))]
            rows.append(Row("%s_%d" % (name, index), 1000 + 50 * start, 1000 + 50 * stop, "take %s" % noun, "take",
                            0, noun, class_id, [class_id]))
            start += int(rng.integers(4, 8))
            index += 1
    visor, annotations = write_visor(base / "in", all_videos, rows, hos, image_quality=90)
    return visor, annotations, videos * frames


def tree_rss_kib(pid: int) -> int:
    """Sum of VmRSS over pid and its descendants (from /proc)."""
    children: dict = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, encoding="utf-8") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            with open("/proc/%d/status" % current, encoding="utf-8") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def descendants(pid: int) -> list:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry, encoding="utf-8") as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return out


def command(visor, annotations, out, jobs) -> list:
    return [ACTISEG, "import", "visor", "--visor", str(visor), "--annotations", str(annotations), "--out", str(out),
            "--jobs", str(jobs)]


def complete_run(visor, annotations, out: Path, jobs: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    process = subprocess.Popen(command(visor, annotations, out, jobs), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss_kib(process.pid))
        time.sleep(0.1)
    wall = time.perf_counter() - started
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit("import failed: %s" % stderr)
    written = 0
    for split in ("train", "val"):
        entries = json.loads((out / "ImageSets" / ("%s.json" % split)).read_text(encoding="utf-8"))
        written += sum(len(e["sparse_frames"]) for e in entries)
    return {"jobs": jobs, "wall_s": round(wall, 2), "sparse_frames_written": written,
            "written_frames_per_s": round(written / wall, 2), "peak_rss_mib": round(peak / 1024, 1),
            "stdout": stdout.strip().splitlines()}


def interrupted_run(visor, annotations, out: Path, jobs: int, signum: int, total_frames: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    process = subprocess.Popen(command(visor, annotations, out, jobs), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    stage_glob = ".%s.visor-import-*" % out.name
    written = 0
    started = time.perf_counter()
    while process.poll() is None and written < total_frames // 3:
        stages = list(out.parent.glob(stage_glob))
        written = sum(1 for s in stages for _ in (s / "JPEGImages_Sparse").rglob("*.jpg")) if stages else 0
        time.sleep(0.2)
    workers = descendants(process.pid)
    if process.poll() is not None:
        raise SystemExit("the import finished before it could be interrupted")
    sent_after = time.perf_counter() - started
    process.send_signal(signum)
    try:
        stdout, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise SystemExit("the import did not stop within 60 s of %s" % signal.Signals(signum).name)
    deadline = time.perf_counter() + 10  # the resource tracker ends once it sees the parent's pipe close
    while time.perf_counter() < deadline and any(Path("/proc/%d" % pid).exists() for pid in workers):
        time.sleep(0.1)
    alive = [pid for pid in workers if Path("/proc/%d" % pid).exists()]
    leftovers = sorted(p.name for p in out.parent.iterdir() if p.name == out.name or p.name.startswith("." + out.name))
    return {"signal": signal.Signals(signum).name, "sent_after_s": round(sent_after, 2),
            "frames_in_stage_when_sent": written, "exit_status": process.returncode,
            "stderr_last_line": (stderr.strip().splitlines() or [""])[-1], "root_exists": out.exists(),
            "left_next_to_root": leftovers, "workers_before": len(workers), "workers_alive_after": alive,
            "nothing_half_written": not out.exists() and not leftovers and not alive}


def cpu_name() -> str:
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--frames", type=int, default=70, help="source frames per video")
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_visor_", dir=args.work))
    try:
        started = time.perf_counter()
        visor, annotations, frames = synthetic_set(work, args.videos, args.frames)
        generate_s = time.perf_counter() - started
        load_before = os.getloadavg()
        runs = [complete_run(visor, annotations, work / "out", 1),
                complete_run(visor, annotations, work / "out", args.jobs)]
        for run in runs:
            run["source_frames_per_s"] = round(frames / run["wall_s"], 2)
        interrupts = [interrupted_run(visor, annotations, work / "out", args.jobs, signum, frames)
                      for signum in (signal.SIGINT, signal.SIGTERM)]
        result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu_name(),
                  "cores": os.cpu_count(), "load_average_before": [round(v, 2) for v in load_before],
                  "load_average_after": [round(v, 2) for v in os.getloadavg()],
                  "input": {"videos": args.videos, "source_frames": frames, "size": "1920x1080",
                            "entities_per_frame": 8, "generate_s": round(generate_s, 1)},
                  "complete_runs": runs, "interrupted_runs": interrupts}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "bench_import_visor.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = ["# `actiseg import visor` throughput and interruption (benchmarks/bench_import_visor.py)", "",
             "%s; %s, %d cores; load average before %s, after %s." % (
                 result["date"], result["cpu"], result["cores"], result["load_average_before"],
                 result["load_average_after"]),
             "Input: %d videos, %d source frames of 1920x1080 (8 random-polygon entities each, in-contact rows on "
             "half), overlapping actions." % (args.videos, frames), "",
             "| jobs | wall s | source frames/s | sparse frames written | written frames/s | peak RSS MiB (tree) |",
             "|---|---|---|---|---|---|"]
    for run in runs:
        lines.append("| %d | %.2f | %.2f | %d | %.2f | %.1f |" % (
            run["jobs"], run["wall_s"], run["source_frames_per_s"], run["sparse_frames_written"],
            run["written_frames_per_s"], run["peak_rss_mib"]))
    lines += ["", "| signal | sent after s | frames in stage then | exit | ROOT exists | left next to ROOT "
              "| workers alive after | nothing half-written |", "|---|---|---|---|---|---|---|---|"]
    for run in interrupts:
        lines.append("| %s | %.2f | %d | %d | %s | %s | %s | %s |" % (
            run["signal"], run["sent_after_s"], run["frames_in_stage_when_sent"], run["exit_status"],
            run["root_exists"], run["left_next_to_root"] or "-", run["workers_alive_after"] or "-",
            run["nothing_half_written"]))
    (args.results / "bench_import_visor.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
