"""`actiseg audit` measured against known noise: AUROC and precision at the top 5% of each kind of record.

    python benchmarks/audit_known_noise.py --work /tmp/audit_bench --out docs/audit

1. Clean data: `actiseg synth --preset default --seed 1` (the generator of the shipped model's training data,
   a seed it never saw: scenes, layouts and narrations are new to the model, as a user's data would be).
   --clean ROOT uses an existing root instead.
2. `actiseg corrupt --text-flip 0.2 --noun-sub 0.3 --mask-dilate 21 --mask-dilate-rate 0.2` on its train split.
3. `actiseg corrupt` has no flag noise, so this script flips the positive flag of a share (--flag-flip, default
   0.1) of the noisy train expressions itself (train.json of the noisy copy, a file of its own; the weight maps
   are left alone: the audit does not read them) and lists them in flag_flips.json.
4. `actiseg audit --data NOISY --split train --json ... --html ...` (the command itself, timed).
5. Scores against the manifests: text records against category flips (substitutions counted clean: a synonym
   is no error), and separately substitutions against clean expressions (what a synonym looks like); flag
   records against the flag flips; mask records against the masks the corrupt run dilated (listed in
   `dilated` with pixels added), over all masks and over the masks of non-flipped expressions.

Writes OUT/table.md, OUT/results.json (with the commands run), OUT/report_top.png (the top rows of each kind
from the HTML report, as one picture) and prints the table. With --report-only it redraws the picture from an
earlier run's audit.json in --work.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from actiseg_ros.audit import report, scoring
from actiseg_ros.data import actionvos
from bench_node import cpu_name  # benchmarks/ is this script's folder

ACTISEG = [sys.executable, "-m", "actiseg_ros.cli"]
TOP_FRACTION = 0.05


def run(command: list, log: list, needed: bool = True) -> None:
    """Log the command (also when an earlier run's output in --work is reused) and run it where needed."""
    log.append(" ".join(shlex.quote(str(c)) for c in command))
    print("$ " + log[-1] + ("" if needed else "   # reused from an earlier run in --work"), flush=True)
    if needed:
        subprocess.run([str(c) for c in command], check=True)


def flip_flags(root: Path, rate: float, seed: int) -> list:
    """Flip the positive flag of each train expression with probability `rate`; -> [(segment, object id)]."""
    path = actionvos.image_set_path(root, "train")
    entries = actionvos.read_json(path)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    flipped = []
    for entry in entries:
        segment = actionvos.Segment.from_json(entry, path)
        for key in sorted(entry["object_classes"], key=int):
            if rng.random() < rate:
                obj = entry["object_classes"][key]
                obj["positive"] = 1 - int(obj["positive"])
                flipped.append([segment.name, int(key)])
    actionvos.write_json(path, entries)
    return flipped


def truth(noisy: Path, flag_flips: list) -> dict:
    manifest = actionvos.read_json(noisy / "noise_manifest.json")
    kinds = {(e["segment"], e["object_id"]): e["kind"] for e in manifest["expressions"]}
    dilated = {(f["segment"], f["frame"], int(i)) for f in manifest["frames"] for i in f["dilated"]
               if str(i) in f["added"]}
    return {"text": kinds, "dilated": dilated, "flag": {tuple(f) for f in flag_flips}}


def measure(records: list, known: dict) -> dict:
    """AUROC and precision at the top 5% per kind (and subsets), against the known noise."""
    by_kind = {kind: [r for r in records if r["kind"] == kind] for kind in scoring.KINDS}
    kinds = known["text"]

    def row(name, chosen, is_noisy):
        scores = [r["score"] for r in chosen]
        labels = [bool(is_noisy(r)) for r in chosen]
        return {"records": name, "n": len(chosen), "noisy": int(sum(labels)),
                "auroc": scoring.auroc(scores, labels), "precision_top5": scoring.precision_at(scores, labels,
                                                                                                TOP_FRACTION),
                "base_rate": float(np.mean(labels)) if labels else None}

    def flipped(r):
        return kinds[(r["segment"], r["object_id"])] == "flip"

    def dilated(r):
        return (r["segment"], r["frame"], r["object_id"]) in known["dilated"]

    text, flag, mask = by_kind["text"], by_kind["flag"], by_kind["mask"]
    rows = [
        row("text: category flips vs all other expressions", text, flipped),
        row("text: substitutions vs clean expressions (flips left out)",
            [r for r in text if kinds[(r["segment"], r["object_id"])] in ("substitute", "none", "not_substitutable")],
            lambda r: kinds[(r["segment"], r["object_id"])] == "substitute"),
        row("flag: flipped positive flags vs all other expressions", flag,
            lambda r: (r["segment"], r["object_id"]) in known["flag"]),
        row("flag: same, expressions with a category flip left out", [r for r in flag if not flipped(r)],
            lambda r: (r["segment"], r["object_id"]) in known["flag"]),
        row("mask: dilated masks vs all other labelled masks", mask, dilated),
        row("mask: same, masks of category-flipped expressions left out", [r for r in mask if not flipped(r)],
            dilated),
        row("mask: masks of category-flipped expressions only (judged by the image, not the wrong name)",
            [r for r in mask if flipped(r)], dilated),
        row("mask: labelled-positive masks only (dilation only ever grows positives)",
            [r for r in mask if r["details"]["label_positive"]], dilated),
    ]

    def noisy_any(r):
        if r["kind"] == "text":
            return flipped(r)
        if r["kind"] == "flag":
            return (r["segment"], r["object_id"]) in known["flag"]
        return dilated(r)

    rows.append(row("all records together (noisy = its kind's noise)", records, noisy_any))
    return rows


def _fmt(value, digits=3) -> str:
    return "-" if value is None else "%.*f" % (digits, value)


def table(rows: list) -> str:
    lines = ["| records | n | noisy | base rate | AUROC | precision at top 5% |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if r["n"] == 0:
            continue
        lines.append("| %s | %d | %d | %s | %s | %s |" % (r["records"], r["n"], r["noisy"], _fmt(r["base_rate"]),
                                                         _fmt(r["auroc"]), _fmt(r["precision_top5"])))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (data, audit output)")
    parser.add_argument("--out", type=Path, default=Path("docs/audit"), help="where table.md etc. go")
    parser.add_argument("--clean", type=Path, default=None, help="clean data root (default: synth seed 1)")
    parser.add_argument("--model", type=Path, default=None, help="exported model (default: the shipped one)")
    parser.add_argument("--segments", type=int, default=None, help="audit only the first N train segments")
    parser.add_argument("--flag-flip", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0, help="noise seed")
    parser.add_argument("--top", type=int, default=3, help="rows of each kind in report_top.png")
    parser.add_argument("--report-only", action="store_true", help="only redraw report_top.png from --work")
    args = parser.parse_args()
    if args.report_only:
        document = actionvos.read_json(args.work / "audit.json")
        draw_sheet(document, args)
        return 0
    commands: list = []
    args.work.mkdir(parents=True, exist_ok=True)
    clean = args.clean or args.work / "clean"
    if args.clean is None:
        run(ACTISEG + ["synth", "--preset", "default", "--seed", 1, "--out", clean], commands,
            needed=not actionvos.image_set_path(clean, "train").is_file())
    noisy = args.work / "noisy"
    needed = not (noisy / "flag_flips.json").is_file()
    run(ACTISEG + ["corrupt", "--data", clean, "--out", noisy, "--text-flip", 0.2, "--noun-sub", 0.3,
                   "--mask-dilate", 21, "--mask-dilate-rate", 0.2, "--seed", args.seed], commands, needed)
    commands.append("# then this script flips the positive flag of each train expression with probability %s "
                    "(seed %d): NOISY/flag_flips.json" % (args.flag_flip, args.seed))
    if needed:
        actionvos.write_json(noisy / "flag_flips.json", flip_flags(noisy, args.flag_flip, args.seed))
    flips = actionvos.read_json(noisy / "flag_flips.json")
    audit_json, audit_html = args.work / "audit.json", args.work / "report" / "report.html"
    audit_command = ACTISEG + ["audit", "--data", noisy, "--split", "train", "--json", audit_json,
                               "--html", audit_html]
    if args.model is not None:
        audit_command += ["--model", args.model]
    if args.segments is not None:
        audit_command += ["--segments", args.segments]
    load_before = os.getloadavg()
    started = time.perf_counter()
    run(audit_command, commands)
    wall = time.perf_counter() - started
    load_after = os.getloadavg()
    document = actionvos.read_json(audit_json)
    rows = measure(document["records"], truth(noisy, flips))
    speed = {"frames": document["frames"], "jobs": document.get("jobs"), "audit_seconds": document["seconds"],
             "frames_per_second": document["frames_per_second"], "stage_seconds": document["stage_seconds"],
             "command_wall_seconds_with_html": round(wall, 1), "cpu": cpu_name(), "cpus": os.cpu_count(),
             "load_average_before": [round(x, 2) for x in load_before],
             "load_average_after": [round(x, 2) for x in load_after]}
    args.out.mkdir(parents=True, exist_ok=True)
    summary = actionvos.read_json(noisy / "noise_summary.json")
    results = {"commands": commands, "clean": str(clean), "noise": summary, "flag_flips": len(flips),
               "speed": speed, "rows": rows, "problems": document["problems"], "counts": document["counts"],
               "top_records": document["records"][:20]}
    actionvos.write_json(args.out / "results.json", results)
    text = table(rows)
    (args.out / "table.md").write_text(
        "# actiseg audit against known noise\n\n%s\n\nAudit: %d frames at %s frames/s (%s worker process(es)) on %s "
        "(%d CPUs), load average %s before, %s after (1/5/15 min); seconds by stage (summed over the workers): "
        "%s.\n\nCommands:\n\n```\n%s\n```\n"
        % (text, speed["frames"], speed["frames_per_second"], speed["jobs"], speed["cpu"], speed["cpus"],
           speed["load_average_before"], speed["load_average_after"],
           ", ".join("%s %.1f" % item for item in speed["stage_seconds"].items()), "\n".join(commands)),
        encoding="utf-8")
    draw_sheet(document, args)
    print(text)
    print(json.dumps(speed))
    return 0


def draw_sheet(document: dict, args) -> None:
    # the picture: the top rows of each kind (the overall top is all text flips at score 1)
    ranked = list(enumerate(document["records"], start=1))
    shown = [pair for kind in scoring.KINDS for pair in [p for p in ranked if p[1]["kind"] == kind][:args.top]]
    results = report.pictures(document, [r for _rank, r in shown], args.model or _default_model(), "ort-cpu", 0)
    report.save_png(args.out / "report_top.png", report.report_sheet(results, [rank for rank, _r in shown]), 128)


def _default_model():
    from actiseg_ros.audit.audit_cli import default_model

    return default_model()


if __name__ == "__main__":
    sys.exit(main())
