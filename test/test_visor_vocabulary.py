"""Vocabulary from VISOR data: the card's vocabulary (names of the training data) drives the node's action
parsing, and `actiseg corrupt` draws flips and substitutions from the data's EPIC-100 classes and names.

The fixture names objects the synthetic taxonomy lacks, with EPIC-100 noun class ids: "cereals bag" and
"cereal bag" (class 19, bag), "cereals box" and "box" (class 23, box), the hands (VISOR's 300, 301).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from actiseg_ros.data.import_visor import import_visor
from actiseg_ros.ros.action_parsing import ActionError, default_vocabulary
from actiseg_ros.ros.params import make_settings
from actiseg_ros.ros.pipeline import create_pipeline
from conftest import run_actiseg
from actiseg_ros.training.vocabulary import split_names
from visor_fixtures import Frame, Row, Video, entity, rect, write_visor

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "default"
BAG, BOX = 19, 23
DATA_CLASSES = {BAG: ["cereal bag", "cereals bag"], BOX: ["box", "cereals box"], 300: ["left hand"],
                301: ["right hand"]}


@pytest.fixture(scope="module")
def visor_root(tmp_path_factory):
    base = tmp_path_factory.mktemp("visor_vocab")
    frames = []
    for i in range(6):
        bag = "cereals bag" if i % 2 == 0 else "cereal bag"
        box = "cereals box" if i % 3 else "box"
        frames.append(Frame(100 + 10 * i, 100 + 10 * i, [
            entity(bag, BAG, rect(100, 100, 499, 499)), entity(box, BOX, rect(600, 100, 999, 499)),
            entity("left hand", 300, rect(300, 400, 699, 799)), entity("right hand", 301, rect(1200, 400, 1599, 799))]))
    videos = [Video("P05_01", "train", frames)]
    rows = [Row("P05_01_%d" % (i + 1), 100 + 10 * i, 110 + 10 * i, "put cereals bag into cereals box", "put-into",
                5, "bag:cereal", BAG, [BAG, BOX]) for i in range(5)]
    visor, annotations = write_visor(base / "in", videos, rows, {})
    root = base / "data"
    import_visor(visor, annotations, root, ("train",), jobs=1, progress=False)
    return root


def test_the_data_vocabulary_holds_the_multi_word_epic_names(visor_root):
    names = split_names(visor_root, "train")
    assert names == {n for v in DATA_CLASSES.values() for n in v}
    assert not names & {n for n in default_vocabulary() if n not in ("left hand", "right hand")}


def card_model(tmp_path, vocabulary):
    """The shipped exported model with another model-card vocabulary (graphs linked, not copied)."""
    folder = tmp_path / "model"
    folder.mkdir()
    for path in SHIPPED.iterdir():
        if path.name != "model_card.json":
            (folder / path.name).symlink_to(path)
    card = json.loads((SHIPPED / "model_card.json").read_text(encoding="utf-8"))
    card["vocabulary"] = vocabulary
    (folder / "model_card.json").write_text(json.dumps(card), encoding="utf-8")
    return folder


@pytest.mark.training  # loads the real ONNX graphs
def test_the_node_pipeline_parses_with_the_cards_vocabulary(visor_root, tmp_path):
    """create_pipeline (what the node's configure runs) takes the card's vocabulary: a card listing the VISOR
    data's names resolves "put cereals bag into cereals box"; the shipped card does not know them."""
    settings = {"backend": "ort-cpu", "threads": 1, "always_objects": ["left hand", "right hand"],
                "action": "put cereals bag into cereals box"}
    visor_model = card_model(tmp_path, sorted(split_names(visor_root, "train")))
    pipeline = create_pipeline(make_settings(dict(settings, model_dir=str(visor_model))))
    command = pipeline.parse("put cereals bag into cereals box")
    assert command.named == ("cereals bag", "cereals box")
    assert command.objects == ("cereals bag", "cereals box", "left hand", "right hand")
    assert pipeline.parse("Put the Cereals Bags into the box!").named == ("cereals bag", "box")
    pipeline.predictor.close()
    shipped = create_pipeline(make_settings(dict(settings, model_dir=str(SHIPPED), action="")))
    assert "cereals bag" not in shipped.parse("put cereals bag into cereals box").named
    shipped.predictor.close()
    strict = create_pipeline(make_settings(dict(settings, model_dir=str(SHIPPED), action="", always_objects=[""])))
    with pytest.raises(ActionError, match="names no known object"):
        strict.parse("put cereals bag into cereals box")
    strict.predictor.close()


def test_corrupt_flips_and_substitutes_over_the_datas_epic_classes(visor_root, tmp_path):
    """`actiseg corrupt` on VISOR-imported data: the vocabulary is the data's classes with the names seen per
    class; a flip moves to another of the data's classes and one of its names, a substitution to another name
    of the same class."""
    out = tmp_path / "noisy"
    done = run_actiseg(["corrupt", "--data", str(visor_root), "--out", str(out), "--text-flip", "0.5",
                        "--noun-sub", "1.0", "--seed", "3"], timeout=300)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "noise_manifest.json").read_text(encoding="utf-8"))
    vocabulary = {int(k): sorted(v) for k, v in manifest["vocabulary"].items()}
    assert vocabulary == DATA_CLASSES
    kinds = {"flip": 0, "substitute": 0}
    for entry in json.loads((out / "ImageSets" / "train.json").read_text(encoding="utf-8")):
        for obj in entry["object_classes"].values():
            assert obj["name"] in DATA_CLASSES[obj["class_id"]]
            if obj["text_noise"] == "flip":
                assert obj["class_id"] != obj["class_id_org"]
                kinds["flip"] += 1
            elif obj["text_noise"] == "substitute":
                assert obj["class_id"] == obj["class_id_org"] and obj["name"] != obj["name_org"]
                kinds["substitute"] += 1
            assert obj["exp"] == "%s used in the action of put cereals bag into cereals box" % obj["name"]
    assert kinds["flip"] > 0 and kinds["substitute"] > 0
    shutil.rmtree(out)
