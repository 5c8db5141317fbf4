"""Robustness grid results: cell records -> per (method, noise) mean and std over seeds, a Markdown table,
the differences from the baseline paired by seed, degradation curves and the foreground-background
trade-off plots.

A cell record is the dict robustness_cell.run_cell writes (method, noise, noise_kind, noise_level, seed, the
six metrics as fractions in [0, 1] or None, wall_seconds, ...). Everything here except `write_outputs` is a
pure function of records; the figures are matplotlib Figure objects (no pyplot state), saved by the caller.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from .robustness_grid import LEVEL_LABELS, LOWER_IS_BETTER, METRIC_LABELS, METRICS

CSV_COLUMNS = ("method", "noise", "noise_kind", "noise_level", "seed") + METRICS + (
    "TP", "TN", "FP", "FN", "videos", "wall_seconds", "train_seconds", "resumed_from_step", "strategy", "pmhm",
    "weights_sha256")
CURVE_KINDS = ("flip", "substitution", "dilation", "mixed")  # one panel per kind; clean is every curve's level 0
TRADEOFFS = (("n_mIoU", "p_mIoU"), ("acc", "p_mIoU"))  # (x, y) panels of the trade-off figure


def mean_std(values: list) -> tuple:
    """(mean, sample std) of the non-missing values; std is None below two values, both None with none."""
    present = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not present:
        return None, None
    mean = sum(present) / len(present)
    if len(present) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in present) / (len(present) - 1))


def _order(values, preferred) -> list:
    """Distinct values in `preferred` order first, then the others in order of appearance."""
    seen = list(dict.fromkeys(values))
    preferred = list(preferred or [])
    return [v for v in preferred if v in seen] + [v for v in seen if v not in preferred]


def sort_records(records: list, methods=None, noises=None) -> list:
    method_rank = {m: i for i, m in enumerate(_order([r["method"] for r in records], methods))}
    noise_rank = {n: i for i, n in enumerate(_order([r["noise"] for r in records], noises))}
    return sorted(records, key=lambda r: (method_rank[r["method"]], noise_rank[r["noise"]], r["seed"]))


def summarise(records: list, methods=None, noises=None) -> list:
    """One row per (method, noise) present: kind, level, seeds, and for each metric its mean and std over
    seeds (fractions), plus the mean wall time. Rows in method order, then noise order."""
    groups: dict = {}
    for record in sort_records(records, methods, noises):
        groups.setdefault((record["method"], record["noise"]), []).append(record)
    rows = []
    for (method, noise), group in groups.items():
        row = {"method": method, "noise": noise, "noise_kind": group[0]["noise_kind"],
               "noise_level": group[0]["noise_level"], "seeds": [r["seed"] for r in group], "n": len(group)}
        for metric in METRICS:
            row[metric], row[metric + "_std"] = mean_std([r[metric] for r in group])
        row["wall_seconds"], _ = mean_std([r.get("wall_seconds") for r in group])
        rows.append(row)
    return rows


def _percent(mean, std) -> str:
    if mean is None:
        return "n/a"
    text = "%.1f" % (100.0 * mean)
    return text if std is None else "%s ± %.1f" % (text, 100.0 * std)


def markdown_table(summary: list, methods=None, noises=None) -> str:
    """Per metric, a methods x noise-settings table of mean ± std over seeds, in percent (one decimal)."""
    method_names = _order([r["method"] for r in summary], methods)
    noise_names = _order([r["noise"] for r in summary], noises)
    cells = {(r["method"], r["noise"]): r for r in summary}
    seeds = sorted({r["n"] for r in summary})
    lines = ["Mean ± std over seeds (%s per cell), in percent. Evaluated on the clean evaluation split. "
             "n-mIoU and n-cIoU: lower is better; the others: higher is better." % "/".join(str(s) for s in seeds)]
    for metric in METRICS:
        arrow = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
        lines += ["", "### %s (%s)" % (METRIC_LABELS[metric], arrow), "",
                  "| method | " + " | ".join(noise_names) + " |",
                  "|---|" + "---|" * len(noise_names)]
        for method in method_names:
            values = [cells.get((method, noise)) for noise in noise_names]
            lines.append("| %s | " % method + " | ".join(
                "–" if row is None else _percent(row[metric], row[metric + "_std"]) for row in values) + " |")
    return "\n".join(lines) + "\n"


PAIRED_METRICS = ("p_mIoU", "gIoU")  # the paper's headline metrics; the difference tables cover these


def paired_differences(records: list, reference: str = "baseline", metrics=PAIRED_METRICS) -> dict:
    """{(method, noise): {metric: [(seed, method - reference), ...] by seed}} for every other method's cell
    whose seed the reference also ran under the same noise. A cell's seed is its noise draw and its training
    seed, so a pair shares the noisy labels and the data order: the difference is the method's own effect,
    free of the noise draw's (which moves both)."""
    by_cell = {(r["method"], r["noise"], r["seed"]): r for r in records}
    pairs: dict = {}
    for (method, noise, seed), record in sorted(by_cell.items(), key=lambda item: item[0][2]):
        other = by_cell.get((reference, noise, seed))
        if method == reference or other is None:
            continue
        entry = pairs.setdefault((method, noise), {m: [] for m in metrics})
        for metric in metrics:
            if record[metric] is not None and other[metric] is not None:
                entry[metric].append((seed, record[metric] - other[metric]))
    return pairs


def _points(difference: float) -> str:
    """A signed difference of fractions in percentage points; one that rounds to zero reads +0.0, not -0.0."""
    return "%+.1f" % (round(100.0 * difference, 1) + 0.0)


def paired_table(records: list, reference: str = "baseline", methods=None, noises=None,
                 metrics=PAIRED_METRICS) -> str:
    """Per metric, methods x noise settings: mean difference from the reference over the shared seeds and,
    in brackets, each seed's own, in percentage points (one decimal, signed)."""
    pairs = paired_differences(records, reference, metrics)
    if not pairs:
        return ""
    method_names = [m for m in _order([r["method"] for r in records], methods) if m != reference]
    noise_names = _order([r["noise"] for r in records], noises)
    lines = ["Difference from `%s` on the same seed (same noisy labels, same data order), in percentage points: "
             "the mean over the seeds both ran, each seed's own in brackets." % reference]
    for metric in metrics:
        lines += ["", "### %s, method - %s" % (METRIC_LABELS[metric], reference), "",
                  "| method | " + " | ".join(noise_names) + " |", "|---|" + "---|" * len(noise_names)]
        for method in method_names:
            texts = []
            for noise in noise_names:
                diffs = [d for _, d in pairs.get((method, noise), {}).get(metric, [])]
                if not diffs:
                    texts.append("–")
                    continue
                text = _points(sum(diffs) / len(diffs))
                if len(diffs) > 1:
                    text += " (%s)" % ", ".join(_points(d) for d in diffs)
                texts.append(text)
            lines.append("| %s | " % method + " | ".join(texts) + " |")
    return "\n".join(lines) + "\n"


def degradation_series(summary: list, metric: str, methods=None) -> dict:
    """{noise kind: {method: [(level, mean, std), ...] by level}}; each curve starts at the method's clean
    result (level 0) when there is one. Kinds without a noisy setting are left out."""
    series: dict = {}
    clean = {r["method"]: r for r in summary if r["noise_kind"] == "clean"}
    for kind in CURVE_KINDS:
        rows = [r for r in summary if r["noise_kind"] == kind]
        if not rows:
            continue
        per_method: dict = {}
        for method in _order([r["method"] for r in rows], methods):
            points = [r for r in rows if r["method"] == method]
            if method in clean:
                points = [clean[method]] + points
            per_method[method] = sorted(((r["noise_level"] if r["noise_kind"] != "clean" else 0.0, r[metric],
                                          r[metric + "_std"]) for r in points if r[metric] is not None),
                                        key=lambda p: p[0])
        series[kind] = per_method
    return series


def tradeoff_points(summary: list, x_metric: str, y_metric: str) -> list:
    """[(method, noise, x mean, y mean)] of every row with both metrics present."""
    return [(r["method"], r["noise"], r[x_metric], r[y_metric]) for r in summary
            if r[x_metric] is not None and r[y_metric] is not None]


def _colours(methods: list) -> dict:
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return {m: palette(i % 10) for i, m in enumerate(methods)}


def degradation_figure(summary: list, metrics=METRICS, methods=None):
    """Rows: metrics; columns: noise kinds; one line per method (mean, error bar = std over seeds)."""
    from matplotlib.figure import Figure

    kinds = [k for k in CURVE_KINDS if any(r["noise_kind"] == k for r in summary)]
    method_names = _order([r["method"] for r in summary], methods)
    colours = _colours(method_names)
    figure = Figure(figsize=(3.6 * max(1, len(kinds)), 2.8 * len(metrics)), layout="constrained")
    axes = figure.subplots(len(metrics), max(1, len(kinds)), squeeze=False)
    for i, metric in enumerate(metrics):
        series = degradation_series(summary, metric, method_names)
        for j, kind in enumerate(kinds):
            ax = axes[i][j]
            for method, points in series.get(kind, {}).items():
                if not points:
                    continue
                ax.errorbar([p[0] for p in points], [100.0 * p[1] for p in points],
                            yerr=[0.0 if p[2] is None else 100.0 * p[2] for p in points], marker="o", ms=3,
                            capsize=2, color=colours[method], label=method)
            ax.set_title("%s, %s" % (METRIC_LABELS[metric], kind), fontsize=9)
            ax.set_xlabel(LEVEL_LABELS[kind], fontsize=8)
            arrow = " (lower is better)" if metric in LOWER_IS_BETTER else ""
            ax.set_ylabel("%s (%%)%s" % (METRIC_LABELS[metric], arrow), fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    handles, labels = [], []
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncol=min(8, len(labels)), fontsize=8)
    return figure


def tradeoff_figure(summary: list, methods=None, noises=None):
    """p-mIoU against n-mIoU and against Acc: one point per method per noise setting (colour = method,
    marker = noise setting)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    method_names = _order([r["method"] for r in summary], methods)
    noise_names = _order([r["noise"] for r in summary], noises)
    colours = _colours(method_names)
    marker_cycle = "o^sDvP*Xh<>p"
    markers = {n: marker_cycle[i % len(marker_cycle)] for i, n in enumerate(noise_names)}
    figure = Figure(figsize=(11, 4.8), layout="constrained")
    axes = figure.subplots(1, len(TRADEOFFS), squeeze=False)[0]
    for ax, (x_metric, y_metric) in zip(axes, TRADEOFFS):
        for method, noise, x, y in tradeoff_points(summary, x_metric, y_metric):
            ax.scatter(100.0 * x, 100.0 * y, color=colours[method], marker=markers[noise], s=30)
        better = "better: left, up" if x_metric in LOWER_IS_BETTER else "better: right, up"
        ax.set_xlabel("%s (%%)" % METRIC_LABELS[x_metric])
        ax.set_ylabel("%s (%%)" % METRIC_LABELS[y_metric])
        ax.set_title("%s vs %s (%s)" % (METRIC_LABELS[y_metric], METRIC_LABELS[x_metric], better), fontsize=10)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=colours[m], marker="o", ls="", label=m) for m in method_names]
    # noise settings in black outlines: no method colour can be mistaken for one
    handles += [Line2D([], [], color="black", mfc="none", marker=markers[n], ls="", label=n) for n in noise_names]
    figure.legend(handles=handles, loc="outside right center", fontsize=8)
    return figure


def cells_csv(records: list, methods=None, noises=None) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for record in sort_records(records, methods, noises):
        flat = dict(record, **record.get("counts", {}))
        writer.writerow(["" if flat.get(c) is None else flat.get(c) for c in CSV_COLUMNS])
    return buffer.getvalue()


def write_outputs(out_dir, records: list, grid_document: dict, methods=None, noises=None, plots: bool = True) -> list:
    """cells.csv, cells.json, summary.json, table.md and (with plots) degradation.png, tradeoff.png in
    out_dir; each written whole to a temporary name and renamed. Returns the written paths."""
    from .robustness_cell import write_json_atomic

    out_dir = Path(out_dir)
    records = sort_records(records, methods, noises)
    summary = summarise(records, methods, noises)
    written = []

    def write_text(name: str, text: str) -> None:
        path = out_dir / name
        tmp = path.with_name("." + name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        written.append(path)

    write_text("cells.csv", cells_csv(records, methods, noises))
    write_json_atomic(out_dir / "cells.json", {"grid": grid_document, "cells": records})
    write_json_atomic(out_dir / "summary.json", {"grid": grid_document, "metrics_scale": "fraction in [0, 1]",
                                                 "summary": summary})
    written += [out_dir / "cells.json", out_dir / "summary.json"]
    header = "# Robustness grid `%s`\n\n%s\n\n" % (grid_document.get("name", ""), grid_document.get("description", ""))
    paired = paired_table(records, methods=methods, noises=noises)
    write_text("table.md", header + markdown_table(summary, methods, noises) + ("\n" + paired if paired else ""))
    if plots and records:
        for name, figure in (("degradation.png", degradation_figure(summary, methods=methods)),
                             ("tradeoff.png", tradeoff_figure(summary, methods, noises))):
            tmp = out_dir / ("." + name + ".tmp.png")
            figure.savefig(tmp, dpi=110)
            tmp.replace(out_dir / name)
            written.append(out_dir / name)
    return written
