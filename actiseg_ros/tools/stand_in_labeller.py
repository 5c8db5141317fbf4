"""The tutorial's stand-in for a person with a labelling tool: COCO instance masks for the frames that
`actiseg import bag` took from a recording of replay_node's synthetic stream, drawn from the stream's own ground
truth. The replay manifest names the stream (seed, domain, size, actions) and the source index of every frame it
published with that frame's header stamp; the import's Stamps/<sequence>.json gives each imported frame's header
stamp, so every imported frame is re-rendered exactly as it was published.

    replay_node --ros-args -p source:=synthetic -p domain:=kitchen_b -p manifest:=bags/replay.jsonl ...
    actiseg record --out bags/kitchen ...  &&  actiseg import bag bags/kitchen ... --out data/my_kitchen_frames
    python -m actiseg_ros.tools.stand_in_labeller --frames data/my_kitchen_frames --manifest bags/replay.jsonl \\
        --out labels.json

On a real robot this step is a person in CVAT, Label Studio or LabelMe and their COCO export; the file written
here has the same form (file_name `<sequence>/frame_XXXXXXXXXX.jpg` relative to ROOT/JPEGImages_Sparse/val,
compressed RLE, `attributes.in_contact`), so `actiseg import coco` reads both alike.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from actiseg_ros.data import actionvos
from actiseg_ros.data.import_bag import STAMPS
from actiseg_ros.tools.coco_export import categories_of, instance_annotation
from actiseg_ros.tools.processes import read_manifest


class LabellerError(ValueError):
    """The frames cannot be matched to the replayed stream; the message names the file or frame."""


def stream_of(header: dict):
    """The SceneStream a manifest's header describes."""
    from actiseg_ros.data.synth import SceneStream

    if header.get("source") != "synthetic":
        raise LabellerError("the manifest is of a %r replay; the stand-in labeller knows only the synthetic stream's "
                            "ground truth" % header.get("source"))
    return SceneStream(seed=int(header["seed"]), size=(int(header["width"]), int(header["height"])),
                       actions=int(header["actions"]), domain=header.get("domain", "kitchen"))


def label_frames(frames_root, manifest) -> tuple:
    """(COCO dict, summary) for every frame of an `actiseg import bag` output recorded from the manifest's replay."""
    from actiseg_ros.data.coco import mask_api

    header, published, _actions = read_manifest(manifest)
    source_of_stamp = {f["stamp_ns"]: f["source_index"] for f in published}
    stamp_files = sorted((Path(frames_root) / STAMPS).glob("*.json"))
    if not stamp_files:
        raise LabellerError("%s has no %s/*.json: is it the output of `actiseg import bag`?" % (frames_root, STAMPS))
    stream = stream_of(header)
    api = mask_api()
    entries = []  # (file_name, StreamFrame)
    for path in stamp_files:
        sequence = path.stem
        for frame in json.loads(path.read_text())["frames"]:
            if frame["stamp_ns"] not in source_of_stamp:
                raise LabellerError("%s/%s (stamp %d ns) was not published by the replay of %s"
                                    % (sequence, frame["file"], frame["stamp_ns"], manifest))
            entries.append(("%s/%s" % (sequence, frame["file"]), stream.render(source_of_stamp[frame["stamp_ns"]])))
    category_ids, categories = categories_of(info.name for _, shown in entries for info in shown.objects.values())
    images, annotations = [], []
    for file_name, shown in entries:
        height, width = shown.labels.shape
        images.append({"id": len(images) + 1, "file_name": file_name, "width": width, "height": height})
        for object_id in sorted(int(v) for v in np.unique(shown.labels) if v):
            info = shown.objects[object_id]
            annotations.append(instance_annotation(api, shown.labels == object_id, len(annotations) + 1, len(images),
                                                   category_ids[info.name], info.handbox))
    coco = {"info": {"description": "stand-in labels of %s (actiseg_ros.tools.stand_in_labeller)" % frames_root},
            "images": images, "annotations": annotations, "categories": categories}
    return coco, {"images": len(images), "annotations": len(annotations), "categories": len(categories)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m actiseg_ros.tools.stand_in_labeller",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", required=True, type=Path, help="output folder of `actiseg import bag`")
    parser.add_argument("--manifest", required=True, type=Path, help="replay_node's manifest of the recording")
    parser.add_argument("--out", required=True, type=Path, help="COCO instance JSON to write")
    args = parser.parse_args(argv)
    try:
        coco, summary = label_frames(args.frames, args.manifest)
    except (ValueError, OSError) as err:  # LabellerError, a bad manifest, missing files
        raise SystemExit("stand_in_labeller: %s" % err) from None
    actionvos.write_json(args.out, coco)
    print("%s: %d images, %d annotations, %d categories; images relative to %s"
          % (args.out, summary["images"], summary["annotations"], summary["categories"],
             args.frames / actionvos.IMAGES / "val"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
