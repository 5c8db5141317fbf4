"""`actiseg synth`: generate a synthetic egocentric action data set in the ActionVOS layout.

    actiseg synth --preset default --seed 0 --out data/synth [--size 427x240] [--contact-sheet sheet.png]
                  [--domain kitchen_b]

Writes JPEGImages_Sparse / Annotations_Sparse / Weights_Sparse and ImageSets/{train,val,val_human}.json under
--out, plus synth_info.json (preset, seed, size, statistics). The same seed gives the same data set.
"""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

from actiseg_ros.data import actionvos
from actiseg_ros.data.synth import PRESETS, dataset_stats, plan_dataset, write_dataset
from actiseg_ros.data.synth_domain import DOMAINS

LAYOUT_DIRS = (actionvos.IMAGES, actionvos.ANNOTATIONS, actionvos.WEIGHTS, actionvos.IMAGE_SETS)


def parse_size(text: str) -> tuple:
    """'WxH' -> (W, H); ValueError with the offending text otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise ValueError("--size %r: expected WIDTHxHEIGHT, e.g. 427x240" % text)
    width, height = int(match.group(1)), int(match.group(2))
    if width < 16 or height < 16 or width > 8192 or height > 8192:
        raise ValueError("--size %r: width and height must be between 16 and 8192 pixels" % text)
    return width, height


def add_arguments(parser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default",
                        help="data set size: tiny (tests, seconds) or default (training, minutes)")
    parser.add_argument("--domain", choices=sorted(DOMAINS), default="kitchen",
                        help="kind of kitchen: kitchen (the shipped model's data) or kitchen_b (a held-out domain: "
                             "six new object classes, another look; for fine-tuning experiments)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same data")
    parser.add_argument("--out", required=True, help="root folder of the ActionVOS layout to write")
    parser.add_argument("--size", default=None, help="frame size WIDTHxHEIGHT (default: the preset's)")
    parser.add_argument("--contact-sheet", default=None, metavar="PNG",
                        help="also write a grid of annotated frames (train split) to this PNG")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the layout folders if --out already holds a data set")


def main(args) -> int:
    preset = PRESETS[args.preset]
    if args.seed < 0:  # numpy's SeedSequence takes non-negative integers only
        raise SystemExit("actiseg synth: --seed must be 0 or more, got %d" % args.seed)
    try:
        size = parse_size(args.size) if args.size else preset.size
    except ValueError as err:
        raise SystemExit("actiseg synth: %s" % err) from None
    root = Path(args.out)
    existing = [d for d in LAYOUT_DIRS if (root / d).exists()]
    if existing and not args.overwrite:
        raise SystemExit("actiseg synth: %s already holds %s; pass --overwrite to replace them"
                         % (root, ", ".join(existing)))
    for folder in existing:
        shutil.rmtree(root / folder)
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    plan = plan_dataset(preset, args.seed, progress=True, domain=args.domain)
    segments = write_dataset(plan, root, size=size, progress=True)
    elapsed = time.perf_counter() - started
    stats = dataset_stats(plan)
    frames = sum(len(s.sparse_frames) for s in segments)
    info = {"generator": "actiseg_ros.data.synth", "preset": preset.name, "seed": args.seed, "domain": args.domain,
            "size": {"width": size[0], "height": size[1]}, "frames": frames, "seconds": round(elapsed, 1),
            "splits": stats}
    (root / "synth_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    for split, s in stats.items():
        print("%-9s %4d segments from %3d scenes | objects %.1f, positives %.1f, negatives %.1f per segment | "
              "unnamed objects among positives %.0f%%, named only %.0f%%"
              % (split, s["segments"], s["scenes"], s["objects_per_segment"], s["positives_per_segment"],
                 s["negatives_per_segment"], 100 * s["unnamed_object_positive_fraction"],
                 100 * s["narration_only_object_positive_fraction"]))
    print("wrote %d frames at %dx%d to %s in %.1f s" % (frames, size[0], size[1], root, elapsed))
    if args.contact_sheet:
        from actiseg_ros.data.contact_sheet import contact_sheet, save_png

        save_png(args.contact_sheet, contact_sheet(root, "train"))
        print("contact sheet: %s" % args.contact_sheet)
    return 0
