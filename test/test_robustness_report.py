"""Tables and plots of the robustness benchmark, on hand-made cell records."""
import csv
import io
import json
import math

import pytest

from actiseg_ros.training.robustness_grid import METRICS
from actiseg_ros.training.robustness_report import (cells_csv, degradation_figure, degradation_series, markdown_table,
                                                    mean_std, paired_differences, paired_table, summarise,
                                                    tradeoff_figure, tradeoff_points, write_outputs)

pytestmark = pytest.mark.slow  # full synthetic generations or command-line subprocesses

KINDS = {"clean": ("clean", 0.0), "flip40": ("flip", 40.0), "dil15": ("dilation", 15.0)}


def record(method, noise, seed, giou, p_miou=0.5, n_miou=0.1, acc=0.8):
    kind, level = KINDS[noise]
    values = {"p_mIoU": p_miou, "n_mIoU": n_miou, "p_cIoU": 0.6, "n_cIoU": 0.2, "gIoU": giou, "acc": acc}
    return {"method": method, "noise": noise, "noise_kind": kind, "noise_level": level, "seed": seed, **values,
            "counts": {"TP": 5, "TN": 4, "FP": 1, "FN": 0, "videos": 2}, "wall_seconds": 10.0 + seed,
            "train_seconds": 8.0, "resumed_from_step": 0, "strategy": "none", "pmhm": method == "pmhm"}


RECORDS = [
    record("pmhm", "dil15", 1, 0.62), record("baseline", "clean", 0, 0.70), record("baseline", "clean", 1, 0.74),
    record("baseline", "flip40", 0, 0.60), record("baseline", "flip40", 1, 0.64), record("baseline", "dil15", 0, 0.50),
    record("baseline", "dil15", 1, 0.54, n_miou=None), record("pmhm", "clean", 0, 0.72),
    record("pmhm", "clean", 1, 0.72),
    record("pmhm", "dil15", 0, 0.58, p_miou=0.7, acc=0.6),
]


def row(summary, method, noise):
    return next(r for r in summary if (r["method"], r["noise"]) == (method, noise))


def test_mean_std():
    assert mean_std([0.5, 0.7]) == pytest.approx((0.6, math.sqrt(0.02)))
    assert mean_std([0.5]) == (0.5, None)
    assert mean_std([None, float("nan")]) == (None, None)
    assert mean_std([0.2, None, 0.4])[0] == pytest.approx(0.3)


def test_summarise_means_stds_and_order():
    summary = summarise(RECORDS, methods=["baseline", "pmhm"], noises=["clean", "flip40", "dil15"])
    assert [(r["method"], r["noise"]) for r in summary] == [
        ("baseline", "clean"), ("baseline", "flip40"), ("baseline", "dil15"), ("pmhm", "clean"), ("pmhm", "dil15")]
    clean = row(summary, "baseline", "clean")
    assert clean["gIoU"] == pytest.approx(0.72) and clean["gIoU_std"] == pytest.approx(math.sqrt(0.0008))
    assert clean["n"] == 2 and clean["seeds"] == [0, 1] and clean["wall_seconds"] == pytest.approx(10.5)
    # a missing metric in one seed: mean over the other, no std
    dilated = row(summary, "baseline", "dil15")
    assert dilated["n_mIoU"] == pytest.approx(0.1) and dilated["n_mIoU_std"] is None
    assert row(summary, "pmhm", "dil15")["p_mIoU"] == pytest.approx(0.6)


def test_markdown_table_layout_and_values():
    summary = summarise(RECORDS, methods=["baseline", "pmhm"], noises=["clean", "flip40", "dil15"])
    text = markdown_table(summary, methods=["baseline", "pmhm"], noises=["clean", "flip40", "dil15"])
    assert text.count("### ") == len(METRICS)
    lines = text.splitlines()
    giou = lines.index("### gIoU (higher is better)")
    assert lines[giou + 2] == "| method | clean | flip40 | dil15 |"
    assert lines[giou + 4] == "| baseline | 72.0 ± 2.8 | 62.0 ± 2.8 | 52.0 ± 2.8 |"
    assert lines[giou + 5] == "| pmhm | 72.0 ± 0.0 | – | 60.0 ± 2.8 |"  # no flip40 cell for pmhm
    assert "### n-mIoU (lower is better)" in lines


def test_paired_differences_pair_each_seed_with_the_baselines_same_seed():
    records = RECORDS + [record("sce", "flip40", 2, 0.9)]  # the baseline has no seed 2: no pair
    pairs = paired_differences(records)
    assert set(pairs) == {("pmhm", "clean"), ("pmhm", "dil15")}
    assert [(s, round(d, 6)) for s, d in pairs[("pmhm", "dil15")]["gIoU"]] == [(0, 0.08), (1, 0.08)]
    assert [(s, round(d, 6)) for s, d in pairs[("pmhm", "dil15")]["p_mIoU"]] == [(0, 0.2), (1, 0.0)]
    assert [(s, round(d, 6)) for s, d in pairs[("pmhm", "clean")]["gIoU"]] == [(0, 0.02), (1, -0.02)]
    text = paired_table(records, methods=["baseline", "pmhm", "sce"], noises=["clean", "flip40", "dil15"])
    lines = text.splitlines()
    giou = lines.index("### gIoU, method - baseline")
    assert lines[giou + 2] == "| method | clean | flip40 | dil15 |"
    assert lines[giou + 4] == "| pmhm | +0.0 (+2.0, -2.0) | – | +8.0 (+8.0, +8.0) |"
    assert lines[giou + 5] == "| sce | – | – | – |"
    assert "| pmhm | +0.0 (+0.0, +0.0) | – | +10.0 (+20.0, +0.0) |" in lines  # p-mIoU
    assert paired_table([record("baseline", "clean", 0, 0.7)]) == ""  # nothing to pair


def test_degradation_series_start_at_clean():
    summary = summarise(RECORDS)
    series = degradation_series(summary, "gIoU")
    assert set(series) == {"flip", "dilation"}
    assert series["dilation"]["baseline"] == [(0.0, pytest.approx(0.72), pytest.approx(math.sqrt(0.0008))),
                                              (15.0, pytest.approx(0.52), pytest.approx(math.sqrt(0.0008)))]
    assert [p[0] for p in series["dilation"]["pmhm"]] == [0.0, 15.0]
    assert "pmhm" not in series["flip"]


def test_tradeoff_points_skip_missing_metrics():
    points = tradeoff_points(summarise(RECORDS), "n_mIoU", "p_mIoU")
    assert len(points) == 5
    assert ("pmhm", "dil15", pytest.approx(0.1), pytest.approx(0.6)) in points
    broken = [dict(r, acc=None) for r in RECORDS if r["method"] == "pmhm"]
    assert tradeoff_points(summarise(broken), "acc", "p_mIoU") == []


def test_figures_have_one_line_or_point_per_method_and_setting():
    summary = summarise(RECORDS)
    figure = degradation_figure(summary, metrics=("gIoU", "n_mIoU"))
    axes = figure.axes
    assert len(axes) == 4  # 2 metrics x 2 noise kinds (flip, dilation)
    flip_giou = axes[0]
    assert flip_giou.get_title() == "gIoU, flip"
    assert [curve.get_label() for curve in flip_giou.containers] == ["baseline"]
    dilation_giou = axes[1]
    assert [curve.get_label() for curve in dilation_giou.containers] == ["pmhm", "baseline"]  # order of appearance
    baseline = dilation_giou.containers[1].lines[0]
    assert list(baseline.get_xdata()) == [0.0, 15.0] and list(baseline.get_ydata()) == pytest.approx([72.0, 52.0])
    trade = tradeoff_figure(summary)
    assert [len(ax.collections) for ax in trade.axes] == [5, 5]
    assert "n-mIoU" in trade.axes[0].get_xlabel() and "Acc" in trade.axes[1].get_xlabel()


def test_cells_csv_has_every_cell_sorted():
    text = cells_csv(RECORDS, methods=["pmhm", "baseline"], noises=["clean", "flip40", "dil15"])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(RECORDS)
    assert [r["method"] for r in rows[:4]] == ["pmhm"] * 4
    assert rows[0]["noise"] == "clean" and rows[0]["TP"] == "5"
    baseline_dil = [r for r in rows if (r["method"], r["noise"]) == ("baseline", "dil15")]
    assert [r["n_mIoU"] for r in baseline_dil] == ["0.1", ""]


def test_write_outputs(tmp_path):
    written = write_outputs(tmp_path, RECORDS, {"name": "hand", "description": "hand-made"})
    assert sorted(p.name for p in written) == sorted(
        ["cells.csv", "cells.json", "summary.json", "table.md", "degradation.png", "tradeoff.png"])
    assert json.loads((tmp_path / "summary.json").read_text())["summary"][0]["method"] == "pmhm"
    table = (tmp_path / "table.md").read_text()
    assert table.startswith("# Robustness grid `hand`") and "### gIoU, method - baseline" in table
    assert (tmp_path / "degradation.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".*tmp*"))
