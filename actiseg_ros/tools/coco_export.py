"""An ActionVOS-layout split -> a COCO instance file (pycocotools RLE) and a narrations CSV.

    python -m actiseg_ros.tools.coco_export ROOT --split train --out labels.json --narrations narrations.csv

What `actiseg import coco` reads back: relabel an existing data set in CVAT (import the COCO file there), or
stand in for a labelling tool's export (the synthetic ground truth as if a person had drawn it). Images are
named `<sequence folder>/<frame>.jpg`, relative to ROOT/JPEGImages_Sparse/<train|val> (pass that folder as
`--images` when importing). One category per object name of the split (sorted; supercategory = the
taxonomy class key, or the name); one annotation per object per frame where its mask has pixels, as
compressed RLE, with `attributes: {"in_contact": <handbox>}` (how CVAT carries a custom attribute), so the
importer gets back the data set's hand-contact flags instead of guessing them from touching masks.
Objects that have no pixel in any frame of their segment cannot be written (COCO has no empty instance);
they are counted in the summary.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from actiseg_ros.data import actionvos
from actiseg_ros.data.coco import CocoError, mask_api
from actiseg_ros.data.import_coco import class_key


def categories_of(names) -> tuple:
    """({name: category id}, COCO categories) for object names: one category per name, sorted."""
    names = sorted(set(names))
    category_ids = {name: index + 1 for index, name in enumerate(names)}
    return category_ids, [{"id": category_ids[n], "name": n, "supercategory": class_key(n)} for n in names]


def instance_annotation(api, mask: np.ndarray, annotation_id: int, image_id: int, category_id: int,
                        in_contact: bool) -> dict:
    """One COCO instance (compressed RLE) for a (H, W) boolean mask, with the hand-contact flag as a CVAT-style
    attribute."""
    rle = api.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"id": annotation_id, "image_id": image_id, "category_id": category_id,
            "segmentation": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")},
            "area": float(api.area(rle)), "bbox": [float(v) for v in api.toBbox(rle)], "iscrowd": 0,
            "attributes": {"in_contact": bool(in_contact)}}


def export_split(root, split: str) -> tuple:
    """(COCO dict, {sequence: narration}, summary dict) of one split."""
    api = mask_api()
    segments = actionvos.read_split(root, split).segments
    category_ids, categories = categories_of(o.name for s in segments for o in s.objects.values())
    images, annotations, narrations = [], [], {}
    invisible = 0
    for segment in segments:
        narrations[segment.name] = segment.narration
        shown = set()
        for frame in segment.sparse_frames:
            with Image.open(actionvos.image_path(root, split, segment.name, frame)) as image:
                width, height = image.size
            image_id = len(images) + 1
            images.append({"id": image_id, "file_name": "%s/%s" % (segment.name, frame), "width": width,
                           "height": height})
            labels = actionvos.read_label_png(actionvos.annotation_path(root, split, segment.name, frame))
            for object_id in sorted(int(v) for v in np.unique(labels) if v):
                info = segment.objects[object_id]
                shown.add(object_id)
                annotations.append(instance_annotation(api, labels == object_id, len(annotations) + 1, image_id,
                                                       category_ids[info.name], info.handbox))
        invisible += len(set(segment.objects) - shown)
    coco = {"info": {"description": "%s split %s (actiseg_ros.tools.coco_export)" % (root, split)},
            "images": images, "annotations": annotations, "categories": categories}
    summary = {"segments": len(segments), "images": len(images), "annotations": len(annotations),
               "categories": len(categories), "objects_without_pixels": invisible}
    return coco, narrations, summary


def write_narrations(path, narrations: dict) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["sequence", "narration"])
    for sequence in sorted(narrations):
        writer.writerow([sequence, narrations[sequence]])
    _write_text(path, buffer.getvalue())


def _write_text(path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m actiseg_ros.tools.coco_export", description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path, help="ActionVOS-layout data set root")
    parser.add_argument("--split", default="train", help="split to export (default train)")
    parser.add_argument("--out", required=True, type=Path, help="COCO instance JSON to write")
    parser.add_argument("--narrations", required=True, type=Path, help="narrations CSV to write (sequence,narration)")
    args = parser.parse_args(argv)
    try:
        coco, narrations, summary = export_split(args.root, args.split)
    except (CocoError, actionvos.DatasetError) as err:
        raise SystemExit("coco_export: %s" % err) from None
    actionvos.write_json(args.out, coco)
    write_narrations(args.narrations, narrations)
    print("%s: %d images, %d annotations, %d categories from %d segments; images relative to %s; narrations %s"
          % (args.out, summary["images"], summary["annotations"], summary["categories"], summary["segments"],
             Path(args.root) / actionvos.IMAGES / actionvos.split_folder(args.split), args.narrations))
    if summary["objects_without_pixels"]:
        print("%d object(s) show in no frame of their segment and are not in the COCO file"
              % summary["objects_without_pixels"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
