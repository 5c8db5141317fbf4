"""One robustness cell and the data it trains on: the clean synthetic set (made once per grid output
folder), its noisy copies (one per noise setting and seed, by `actiseg corrupt`), and train -> infer on the
clean evaluation split -> `actiseg eval`.

Everything a cell writes is either atomic (its result JSON, the data folders: built under a temporary name
and renamed) or resumable (training resumes from the cell's latest.pt), so a grid killed at any moment
continues where it stopped.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

from actiseg_ros.data.noise_cli import corrupt
from actiseg_ros.data.synth import dataset_stats, plan_dataset, write_dataset
from actiseg_ros.evaluation.eval_cli import evaluate, format_notes
from actiseg_ros.evaluation.metrics import to_json_summary

from .robustness_grid import METRICS, Cell, Grid, GridError

DATA_INFO = "robustness_data.json"
CLEAN = "clean"
FEATURE_CACHE = "feature_cache"


def write_json_atomic(path, document) -> None:
    """Temp file + fsync + rename: a reader (or a resumed grid) never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".%s.tmp%d" % (path.name, os.getpid()))
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(document, indent=2, allow_nan=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _fresh_tmp(final: Path) -> Path:
    """A temporary sibling of `final` to build into; leftovers of a killed build are removed first."""
    tmp = final.with_name(final.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    return tmp


def _check_data_info(root: Path, expected: dict) -> None:
    info_file = root / DATA_INFO
    found = json.loads(info_file.read_text(encoding="utf-8")) if info_file.is_file() else None
    if found != expected:
        raise GridError("%s was made for a different grid data definition (found %s, this grid needs %s); "
                         "use another --out" % (root, found, expected))


def prepare_clean_data(grid: Grid, data_dir) -> Path:
    """DATA_DIR/clean: the grid's synthetic data set, generated once (actiseg_ros.data.synth)."""
    root = Path(data_dir) / CLEAN
    expected = {"data": grid.data.to_json()}
    if root.is_dir():
        _check_data_info(root, expected)
        return root
    tmp = _fresh_tmp(root)
    plan = plan_dataset(grid.data.preset_object(), grid.data.seed)
    write_dataset(plan, tmp, size=grid.data.size, progress=True)
    write_json_atomic(tmp / DATA_INFO, expected)
    write_json_atomic(tmp / "synth_info.json", {"generator": "actiseg_ros.data.synth", "splits": dataset_stats(plan),
                                                **grid.data.to_json()})
    os.replace(tmp, root)
    return root


def train_segment_count(grid: Grid, data_dir) -> int:
    """Training segments of the grid's data: read from DATA_DIR/clean if it is there, else from the synth plan
    (no rendering). Noise never changes the count."""
    split = grid.train_config(grid.cells()[0], "<data>").train_split
    index = Path(data_dir) / CLEAN / "ImageSets" / (split + ".json")
    if index.is_file():
        return len(json.loads(index.read_text(encoding="utf-8")))
    return dataset_stats(plan_dataset(grid.data.preset_object(), grid.data.seed))[split]["segments"]


def noisy_data_path(data_dir, noise: str, seed: int) -> Path:
    return Path(data_dir) / ("%s__seed%d" % (noise, seed))


def prepare_noisy_data(grid: Grid, clean_root: Path, noise: str, seed: int, data_dir) -> Path:
    """The training data of every cell with this (noise setting, seed): `actiseg corrupt` of the clean set
    with the seed as noise seed, made once and shared by all methods. The clean setting is the clean set."""
    setting = grid.noise_setting(noise)
    if setting.is_clean:
        return clean_root
    root = noisy_data_path(data_dir, noise, seed)
    expected = {"data": grid.data.to_json(), "noise": setting.to_json(), "seed": seed}
    if root.is_dir():
        _check_data_info(root, expected)
        return root
    tmp = _fresh_tmp(root)
    # hard links into the clean set: the noisy copies cost only the changed files
    corrupt(clean_root, tmp, seed=seed, workers=1, **setting.corrupt_arguments())
    write_json_atomic(tmp / DATA_INFO, expected)
    os.replace(tmp, root)
    return root


# --- one cell ----------------------------------------------------------------------------------------

def cell_paths(out_dir, cell: Cell) -> dict:
    out_dir = Path(out_dir)
    return {"result": out_dir / "cells" / (cell.id + ".json"), "error": out_dir / "cells" / (cell.id + ".error.txt"),
            "run": out_dir / "runs" / cell.id}


def read_result(out_dir, cell: Cell):
    """The finished cell's record, or None if it has not finished."""
    path = cell_paths(out_dir, cell)["result"]
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def infer_predictions(model_path: Path, data_root: Path, split: str, pred_dir: Path, threads: int,
                      feature_cache: str = "") -> None:
    """`actiseg infer` itself, through its own argument parser (so its defaults apply)."""
    from . import infer

    parser = argparse.ArgumentParser(prog="actiseg infer")
    infer.add_arguments(parser)
    args = parser.parse_args(["--data", str(data_root), "--split", split, "--out", str(pred_dir),
                              "--model", str(model_path), "--threads", str(threads)]
                             + (["--feature-cache", feature_cache] if feature_cache else []))
    infer.main(args)


def weights_digest(path) -> str:
    """SHA-256 (16 hex digits) of a checkpoint's weights, tensor by tensor in name order: a rerun of the cell
    is exact only if this matches, which is stricter than equal metrics."""
    import hashlib

    import torch

    state = torch.load(path, map_location="cpu", weights_only=False)["model"]
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


LOG = "log.jsonl"  # OUT/log.jsonl: the grid's event log


class EventLog:
    """DIR/log.jsonl: one JSON object per line, appended and flushed at once (a kill loses nothing)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(path, "a", encoding="utf-8")

    def __call__(self, event: str, **fields) -> None:
        self.handle.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "event": event, **fields}) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> "EventLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_cell(grid: Grid, cell: Cell, train_root: Path, clean_root: Path, out_dir, keep_models: bool = False) -> dict:
    """Train (resuming the cell's own checkpoint if any), predict the clean evaluation split, score it.
    Writes and returns the cell record. The inner tools' output goes to runs/<cell>/cell.log.

    Two runners on one output folder (`--methods` or `--only` beside a running grid) may reach the same cell:
    an exclusive lock (runs/<cell>.lock) makes the second wait for the first and return its record, instead
    of training in the same folder at the same time."""
    import fcntl

    runs = cell_paths(out_dir, cell)["run"].parent
    runs.mkdir(parents=True, exist_ok=True)
    with open(runs / (cell.id + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        finished = read_result(out_dir, cell)
        fingerprint = grid.fingerprint(cell)
        if finished is not None and finished.get("fingerprint") == fingerprint:
            print("cell %s was finished by another runner meanwhile" % cell.id, file=sys.stderr)
            return finished
        # one short line appended and flushed: the jobs' and the grid's events do not interleave within a line
        with EventLog(Path(out_dir) / LOG) as log:
            log("cell_start", cell=cell.id, pid=os.getpid())
        return _train_and_score(grid, cell, fingerprint, train_root, clean_root, out_dir, keep_models)


def _train_and_score(grid: Grid, cell: Cell, fingerprint: str, train_root: Path, clean_root: Path, out_dir,
                     keep_models: bool) -> dict:
    from .train import train

    paths = cell_paths(out_dir, cell)
    run_dir = paths["run"]
    run_dir.mkdir(parents=True, exist_ok=True)
    marker = run_dir / "fingerprint.txt"
    if marker.is_file() and marker.read_text().strip() != fingerprint:
        shutil.rmtree(run_dir)  # unfinished work of another grid definition: its checkpoint must not be resumed
        run_dir.mkdir(parents=True)
    marker.write_text(fingerprint + "\n")
    config = grid.train_config(cell, train_root)
    if grid.feature_cache:  # shared by every cell and job of this output folder (feature_cache.py)
        config = dataclasses.replace(config, feature_cache=str(Path(out_dir).resolve() / FEATURE_CACHE))
    started = time.monotonic()
    resumed_from = [0]

    with open(run_dir / "cell.log", "a", encoding="utf-8") as log_handle, \
            contextlib.redirect_stderr(log_handle), contextlib.redirect_stdout(log_handle):
        def log(message: str) -> None:
            if message.startswith("resumed from step "):
                resumed_from[0] = int(message.split()[-1])
            print(message, flush=True)

        print("=== %s: cell %s, fingerprint %s" % (time.strftime("%Y-%m-%d %H:%M:%S"), cell.id, fingerprint),
              flush=True)
        train(config, run_dir, resume=True, log=log)
        train_seconds = time.monotonic() - started
        pred_dir = run_dir / "predictions"
        if pred_dir.exists():
            shutil.rmtree(pred_dir)
        infer_predictions(run_dir / "model.pt", clean_root, grid.eval_split, pred_dir, config.threads,
                          config.feature_cache)
        report = evaluate(pred_dir, clean_root, grid.eval_split)
        for note in format_notes(report):
            print("eval: %s" % note, flush=True)
    if report.videos == 0:
        raise ValueError("%s: no segment of %s was scored" % (clean_root, grid.eval_split))
    metrics = to_json_summary(report.metrics.result(), report.videos)
    setting = grid.noise_setting(cell.noise)
    record = {"method": cell.method, "noise": cell.noise, "noise_kind": setting.kind, "noise_level": setting.level,
              "seed": cell.seed, **{m: metrics[m] for m in METRICS},
              "counts": {k: metrics[k] for k in ("TP", "TN", "FP", "FN", "videos")},
              "wall_seconds": round(time.monotonic() - started, 1), "train_seconds": round(train_seconds, 1),
              "resumed_from_step": resumed_from[0], "weights_sha256": weights_digest(run_dir / "model.pt"),
              "strategy": config.loss.strategy, "pmhm": config.loss.pmhm,
              "train_data": str(train_root), "eval_data": str(clean_root), "eval_split": grid.eval_split,
              "fingerprint": fingerprint, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json_atomic(paths["result"], record)
    if paths["error"].is_file():
        paths["error"].unlink()
    # The record is what the grid keeps; checkpoints of 80+ cells would fill the disk.
    shutil.rmtree(pred_dir, ignore_errors=True)
    for name in ["latest.pt"] + ([] if keep_models else ["model.pt", "model_peer.pt"]):
        (run_dir / name).unlink(missing_ok=True)
    return record


def run_cell_task(task: tuple) -> tuple:
    """Worker entry point for --jobs > 1 (a spawned process): (cell, record or None, error text or None)."""
    grid, cell, train_root, clean_root, out_dir, keep_models = task
    try:
        return cell, run_cell(grid, cell, train_root, clean_root, out_dir, keep_models), None
    except Exception:  # noqa: BLE001 - reported per cell; the grid goes on with the others
        error = traceback.format_exc()
        write_error(out_dir, cell, error)
        return cell, None, error


def write_error(out_dir, cell: Cell, error: str) -> None:
    path = cell_paths(out_dir, cell)["error"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(error, encoding="utf-8")
    print("cell %s failed (%s); the grid goes on, a rerun retries it" % (cell.id, path), file=sys.stderr)
