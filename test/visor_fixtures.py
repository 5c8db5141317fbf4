"""VISOR-format input written from ../shared/spec/visor-import.md section 1, for `actiseg import visor` tests and
benchmarks/bench_import_visor.py: frame_mapping.json, annotations_corrected/{split}/{video}.json, 1920x1080
rgb_frames JPEGs, the two EPIC-100 action tables, the VISOR-HOS COCO files and the palette image.

A fixture is described in plain Python values:
    videos   [Video(name, split, frames=[Frame(ek_number, visor_number, entities or None)])], in mapping order;
             entities None = the frame is mapped but has no annotation record; Video.annotated False = no JSON
    rows     [Row(...)] EPIC-100 action rows; Row.table picks EPIC_100_train.csv or EPIC_100_validation.csv
    hos      {split: [Hos(visor_name, category, bbox, segmentation)]}
Entities are dicts {"name", "class_id", "segments"} exactly as VISOR writes them.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

# The palette the spec lists (0 black, 1 (128,0,0), 2 (0,128,0), ...); test_actionvos checks its first entries
# against those values, so the fixtures can take the product's generator.
from actiseg_ros.data.actionvos import davis_palette

WIDTH, HEIGHT = 1920, 1080
EPIC_HEADER = ("narration_id", "participant_id", "video_id", "narration_timestamp", "start_timestamp",
               "stop_timestamp", "start_frame", "stop_frame", "narration", "verb", "verb_class", "noun", "noun_class",
               "all_nouns", "all_noun_classes")


@dataclass
class Frame:
    ek: int
    visor: int
    entities: list | None = field(default_factory=list)

    def ek_name(self) -> str:
        return "frame_%010d.jpg" % self.ek


@dataclass
class Video:
    name: str
    split: str
    frames: list
    annotated: bool = True  # write annotations_corrected/{split}/{name}.json
    images: bool = True  # write the rgb frames

    def visor_name(self, frame: Frame) -> str:
        return "%s_frame_%010d.jpg" % (self.name, frame.visor)


@dataclass
class Row:
    narration_id: str
    start: int
    stop: int
    narration: str
    verb: str
    verb_class: int
    noun: str
    noun_class: int
    all_noun_classes: list
    table: str = "train"  # or "validation"

    @property
    def video(self) -> str:
        return self.narration_id.rsplit("_", 1)[0]


@dataclass
class Hos:
    visor_name: str
    category: int  # 1 hand, 2 in-contact object
    bbox: list
    segmentation: list


def rect(x0, y0, x1, y1) -> list:
    """A VISOR polygon (list of [x, y]) of the axis-aligned rectangle with these corner pixels."""
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def flat_rect(x0, y0, x1, y1) -> list:
    """The same rectangle as a COCO flat polygon."""
    return [v for point in rect(x0, y0, x1, y1) for v in point]


def entity(name: str, class_id: int, *polygons) -> dict:
    return {"id": "%s-%d" % (name, class_id), "name": name, "class_id": class_id, "segments": list(polygons),
            "exhaustive": "y", "in_contact_object": "none-of-the-above", "on_which_hand": None}


def frame_image(seed: int) -> np.ndarray:
    """A 1920x1080 BGR frame: smooth colour ramps plus a few sharp-edged blocks, different per seed."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    image = np.stack([(xs * 255 // WIDTH + seed * 17) % 256, (ys * 255 // HEIGHT + seed * 29) % 256,
                      ((xs + ys) * 255 // (WIDTH + HEIGHT) + seed * 7) % 256], axis=-1).astype(np.uint8)
    rng = np.random.default_rng(seed)
    for _ in range(6):
        x, y = int(rng.integers(0, WIDTH - 200)), int(rng.integers(0, HEIGHT - 200))
        image[y:y + int(rng.integers(20, 200)), x:x + int(rng.integers(20, 200))] = rng.integers(0, 256, 3)
    return image


def write_visor(base, videos: list, rows: list, hos: dict, image_quality: int = 90) -> tuple:
    """Write the fixture under BASE; returns (visor_root, annotations_dir)."""
    base = Path(base)
    visor, annotations = base / "VISOR", base / "annotations"
    sparse = visor / "GroundTruth-SparseAnnotations"
    annotations.mkdir(parents=True, exist_ok=True)
    mapping = {}
    for video in videos:
        mapping[video.name] = {video.visor_name(f): f.ek_name() for f in video.frames}
        if video.annotated:
            records = [{"image": {"image_path": "%s/%s" % (video.name, video.visor_name(f)),
                                  "name": video.visor_name(f), "subsequence": "%s_a" % video.name,
                                  "video": video.name},
                        "annotations": f.entities}
                       for f in video.frames if f.entities is not None]
            path = sparse / "annotations_corrected" / video.split / ("%s.json" % video.name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"video_annotations": records}), encoding="utf-8")
        if video.images:
            folder = sparse / "rgb_frames" / video.split / video.name
            folder.mkdir(parents=True, exist_ok=True)
            for frame in video.frames:
                cv2.imwrite(str(folder / video.visor_name(frame)), frame_image(frame.visor),
                            [cv2.IMWRITE_JPEG_QUALITY, image_quality])
    visor.mkdir(parents=True, exist_ok=True)
    (visor / "frame_mapping.json").write_text(json.dumps(mapping), encoding="utf-8")
    for table in ("train", "validation"):
        with open(annotations / ("EPIC_100_%s.csv" % table), "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(EPIC_HEADER)
            for row in rows:
                if row.table != table:
                    continue
                writer.writerow([row.narration_id, row.video.split("_")[0], row.video, "00:00:01.000",
                                 "00:00:01.000", "00:00:02.000", row.start, row.stop, row.narration, row.verb,
                                 row.verb_class, row.noun, row.noun_class, str([row.noun]),
                                 str(list(row.all_noun_classes))])
    for split in ("train", "val"):
        images, anns = [], []
        names = sorted({h.visor_name for h in hos.get(split, [])})
        for image_id, name in enumerate(names, start=1):
            images.append({"id": image_id, "file_name": name, "height": HEIGHT, "width": WIDTH})
        for ann_id, row in enumerate(hos.get(split, []), start=1):
            anns.append({"id": ann_id, "image_id": names.index(row.visor_name) + 1, "category_id": row.category,
                         "bbox": row.bbox, "segmentation": row.segmentation, "area": 1, "iscrowd": 0})
        document = {"images": images, "annotations": anns,
                    "categories": [{"id": 1, "name": "hand"}, {"id": 2, "name": "object"}]}
        (annotations / ("visor_hos_%s.json" % split)).write_text(json.dumps(document), encoding="utf-8")
    palette_image = Image.fromarray(np.zeros((480, 854), np.uint8))
    palette_image.putpalette(davis_palette())
    palette_image.save(annotations / "00000.png")
    return visor, annotations
