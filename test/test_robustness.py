"""`actiseg robustness` end to end on a micro grid (2 methods x 2 noise settings x 1 seed, a few training
steps on the tiny preset): every output is written; a grid killed (SIGKILL) in its second cell skips the
finished first cell when run again, resumes the second from its checkpoint, and completes; `--only`
reproduces a cell's numbers exactly in another folder."""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from actiseg_ros.training import robustness
from actiseg_ros.training.robustness_grid import METRICS

pytestmark = pytest.mark.training  # real torch models, exports or training steps

MICRO = """
description: micro grid for the tests
data: {preset: tiny, seed: 0}
recipe: [tiny]
set: {epochs: 1, frames_per_clip: 1, threads: 1, checkpoint_every: 1, val_split: val}
seeds: 1
methods:
  baseline: {set: {loss.pmhm: false, model.aux_heads: 0}}
  pmhm: {}
noise:
  clean: {}
  mixed: {text_flip: 0.4, mask_dilate: 15}
"""
FIRST, SECOND = "baseline__clean__seed0", "pmhm__clean__seed0"
CELLS = [FIRST, SECOND, "baseline__mixed__seed0", "pmhm__mixed__seed0"]


def run_main(*argv) -> int:
    parser = argparse.ArgumentParser()
    robustness.add_arguments(parser)
    return robustness.main(parser.parse_args([str(a) for a in argv]))


def events(out: Path) -> list:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def killed_and_finished(tmp_path_factory):
    """The micro grid killed while training its second cell, then run again to completion."""
    base = tmp_path_factory.mktemp("robustness")
    grid = base / "micro.yaml"
    grid.write_text(MICRO)
    out = base / "grid"
    # cwd outside the source tree: the checkout's actiseg_ros would shadow the installed one
    process = subprocess.Popen([sys.executable, "-m", "actiseg_ros.training.robustness", "--grid", str(grid),
                                "--out", str(out)], cwd=base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = out / "runs" / SECOND / "latest.pt"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert checkpoint.exists(), "the grid did not reach the second cell's first checkpoint"
    first_file = out / "cells" / (FIRST + ".json")
    killed = {"first_mtime": first_file.stat().st_mtime_ns,
              "second_done": (out / "cells" / (SECOND + ".json")).exists()}
    assert run_main("--grid", grid, "--out", out) == 0
    return grid, out, killed


def test_killed_grid_skips_finished_cells_and_resumes_the_interrupted_one(killed_and_finished):
    _grid, out, killed = killed_and_finished
    assert not killed["second_done"]
    assert (out / "cells" / (FIRST + ".json")).stat().st_mtime_ns == killed["first_mtime"]
    log = events(out)
    starts = [e["cell"] for e in log if e["event"] == "cell_start"]
    assert starts.count(FIRST) == 1 and starts.count(SECOND) == 2
    assert {"event": "cell_skip", "cell": FIRST}.items() <= [e for e in log if e["event"] == "cell_skip"][0].items()
    second = json.loads((out / "cells" / (SECOND + ".json")).read_text())
    assert second["resumed_from_step"] >= 1
    assert "resumed from step" in (out / "runs" / SECOND / "cell.log").read_text()


def test_grid_writes_every_output(killed_and_finished):
    _grid, out, _ = killed_and_finished
    records = json.loads((out / "cells.json").read_text())["cells"]
    assert sorted(r["method"] + "__" + r["noise"] + "__seed0" for r in records) == sorted(CELLS)
    for r in records:
        assert all(r[m] is None or 0.0 <= r[m] <= 1.0 for m in METRICS) and r["wall_seconds"] > 0
        assert r["eval_data"].endswith("data/clean") and r["eval_split"] == "val_human"
        assert r["train_data"].endswith("data/clean" if r["noise"] == "clean" else "data/mixed__seed0")
    assert len((out / "cells.csv").read_text().splitlines()) == 1 + len(CELLS)
    summary = json.loads((out / "summary.json").read_text())["summary"]
    assert [(s["method"], s["noise"], s["n"]) for s in summary] == [
        ("baseline", "clean", 1), ("baseline", "mixed", 1), ("pmhm", "clean", 1), ("pmhm", "mixed", 1)]
    table = (out / "table.md").read_text()
    assert "| method | clean | mixed |" in table and "| pmhm |" in table
    for plot in ("degradation.png", "tradeoff.png"):
        assert (out / plot).stat().st_size > 10000
    # the noisy training set was made by `actiseg corrupt` (both noise kinds), the evaluation data untouched
    noise_summary = json.loads((out / "data" / "mixed__seed0" / "noise_summary.json").read_text())
    assert noise_summary["requested"]["text_flip"] == 0.4 and noise_summary["mask"]["pixels_changed"] > 0
    assert noise_summary["text"]["flipped"] > 0
    # finished cells keep their record and logs, not their checkpoints
    assert not list((out / "runs").glob("*/latest.pt")) and not list((out / "runs").glob("*/model.pt"))
    assert run_main("--grid", _grid, "--out", out) == 0  # nothing left to run
    assert [e["event"] for e in events(out)[-len(CELLS) - 1:]] == ["run"] + ["cell_skip"] * len(CELLS)


def test_only_reproduces_a_cell_exactly(killed_and_finished, tmp_path):
    grid, out, _ = killed_and_finished
    # the cell that was killed mid-training and resumed: reproducing it checks the resume as well
    assert run_main("--grid", grid, "--out", tmp_path / "again", "--only", "pmhm:clean:0") == 0
    original = json.loads((out / "cells" / (SECOND + ".json")).read_text())
    rerun = json.loads((tmp_path / "again" / "cells" / (SECOND + ".json")).read_text())
    assert rerun["fingerprint"] == original["fingerprint"]
    assert {m: rerun[m] for m in METRICS} == {m: original[m] for m in METRICS}
    assert rerun["counts"] == original["counts"]
    assert rerun["weights_sha256"] == original["weights_sha256"]  # bit-identical weights, not just equal scores
    # (the digest does see the training: the same method on noisy data ends with other weights)
    mixed = json.loads((out / "cells" / "pmhm__mixed__seed0.json").read_text())
    assert mixed["weights_sha256"] != original["weights_sha256"]
    assert [p.name for p in (tmp_path / "again" / "cells").iterdir()] == [SECOND + ".json"]


def test_changed_definition_is_refused(killed_and_finished, tmp_path, capsys):
    grid, out, _ = killed_and_finished
    changed = tmp_path / "micro.yaml"
    changed.write_text(grid.read_text().replace("epochs: 1,", "epochs: 2,"))
    assert run_main("--grid", changed, "--out", out, "--report-only") == 2
    assert "different definition of this cell" in capsys.readouterr().err


CACHED = """
description: micro grid with the shared feature cache and a cost section
data: {preset: tiny, seed: 0}
recipe: [tiny]
set: {epochs: 1, frames_per_clip: 1, threads: 1, val_split: val, jitter: 0.0, model.backbone_trainable: false,
      loss.pmhm: false, model.aux_heads: 0}
seeds: 1
feature_cache: true
cost: {seconds_per_step: {default: 2.0}, cell_overhead_seconds: 10, measured: "made up for the test"}
methods:
  baseline: {}
noise:
  clean: {}
  dilate: {mask_dilate: 15}
"""


def test_cached_grid_prints_its_cost_and_shares_one_feature_cache(tmp_path, capsys):
    grid = tmp_path / "cached.yaml"
    grid.write_text(CACHED)
    out = tmp_path / "grid"
    assert run_main("--grid", grid, "--out", out, "--estimate-only") == 0
    printed = capsys.readouterr().out
    assert "2 of 2 cells to run" in printed and "made up for the test" in printed
    steps = int(printed.split(" steps)")[0].rsplit("(", 1)[1])
    total = 2 * (steps * 2.0 + 10)
    assert "total %.0f s" % total in printed and not (out / "cells").exists()  # estimate only: nothing ran
    # two jobs: both cells fill the one cache at the same time (atomic writes)
    assert run_main("--grid", grid, "--out", out, "--nice", "1", "--jobs", "2") == 0
    assert os.nice(0) >= 1  # --nice lowered this (test) process's priority, which cells inherit
    assert "total %.0f s" % total in capsys.readouterr().out
    estimate = [e for e in events(out) if e["event"] == "estimate"]
    assert len(estimate) == 1 and estimate[0]["seconds"] == round(total)
    # with jobs the grid queues every cell at once; each cell's start is logged by the job that runs it
    kinds = {(e["event"], e.get("cell")): e for e in events(out)}
    for name in ("baseline__clean__seed0", "baseline__dilate__seed0"):
        assert ("cell_queued", name) in kinds and ("cell_done", name) in kinds
        assert kinds[("cell_start", name)]["pid"] != os.getpid()
    frames = list((out / "feature_cache").rglob("*.npz"))
    # dilation leaves the prompts as they are: both cells use one prompt bank
    assert frames and len(list((out / "feature_cache").glob("prompts-*.pt"))) == 1
    # keyed by image content: the dilated copy's frames (the same images) add no entries of their own
    assert len(frames) <= len(list((out / "data" / "clean" / "JPEGImages_Sparse" / "train").rglob("*.jpg")))
    for name in ("baseline__clean__seed0", "baseline__dilate__seed0"):
        record = json.loads((out / "cells" / (name + ".json")).read_text())
        assert record["gIoU"] is not None
    fingerprint = json.loads((out / "cells" / "baseline__clean__seed0.json").read_text())["fingerprint"]
    uncached = tmp_path / "uncached.yaml"
    uncached.write_text(CACHED.replace("feature_cache: true", "feature_cache: false"))
    assert run_main("--grid", uncached, "--out", tmp_path / "plain", "--only", "baseline:clean:0") == 0
    plain = json.loads((tmp_path / "plain" / "cells" / "baseline__clean__seed0.json").read_text())
    assert plain["fingerprint"] == fingerprint
    cached = json.loads((out / "cells" / "baseline__clean__seed0.json").read_text())
    assert plain["weights_sha256"] == cached["weights_sha256"]  # the cache changes nothing in the result


def test_methods_and_only_cannot_be_combined_and_unknown_methods_are_named(tmp_path, capsys):
    grid = tmp_path / "micro.yaml"
    grid.write_text(MICRO)
    assert run_main("--grid", grid, "--out", tmp_path / "out", "--methods", "baseline", "--only",
                    "baseline:clean:0") == 2
    assert "--only and --methods" in capsys.readouterr().err
    assert run_main("--grid", grid, "--out", tmp_path / "out", "--methods", "baseline,nope") == 2
    assert "--methods nope: not method(s) of grid" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything was written
