"""The held-out `kitchen_b` domain of the generator, and the `kitchen` domain staying as it was."""
import hashlib
import json

import numpy as np
import pytest

from actiseg_ros.data import actionvos, taxonomy
from actiseg_ros.data.synth import PRESETS, plan_dataset, write_dataset
from actiseg_ros.data.synth_domain import DOMAINS, KITCHEN_B, NEW_KEYS, domain
from actiseg_ros.data.synth_scene import KITCHEN, SceneConfig, sample_scene

pytestmark = pytest.mark.slow  # full synthetic generations or command-line subprocesses

# `actiseg synth --preset tiny --seed 0` before domains existed (commit efccbba): ImageSets and label PNGs.
TINY_SEED0_IMAGE_SETS = {
    "train.json": "d3c47d203a6c25cbee975203f02c4159184cb27ef6a663d90f96af8267a38706",
    "val.json": "373d95fdc65e53a15bea565439eb48bd4d8bd0044447b8e34d62c7077de6db29",
    "val_human.json": "ebc8287577335d73905c023449b93f8476a2f3f2bb66c288221c8304c03fbb58",
}
TINY_SEED0_LABELS = "bf2ef4a68d0d4ad134435b8d15aee854212a1819e03660ea0ac2041e57db6974"


def test_new_classes_are_epic_classes_outside_the_shipped_vocabulary():
    shipped = {c.class_id for c in taxonomy.ALL_CLASSES}
    names = [n for c in taxonomy.KNOWN_CLASSES for n in c.names]
    assert len(names) == len(set(names))  # a name belongs to one class
    assert {c.key: c.class_id for c in taxonomy.KITCHEN_B_CLASSES} == {
        "cupboard": 3, "fork": 14, "spatula": 20, "colander": 39, "jar": 40, "kettle": 44}
    for cls in taxonomy.KITCHEN_B_CLASSES:
        assert cls.class_id not in shipped and len(cls.names) >= 2
        assert taxonomy.class_by_id(cls.class_id) is cls
    assert set(NEW_KEYS) == {c.key for c in taxonomy.KITCHEN_B_CLASSES}
    assert "spatula" not in {n for names in taxonomy.vocabulary().values() for n in names}
    assert domain("kitchen") is KITCHEN and domain("kitchen_b") is KITCHEN_B
    assert set(DOMAINS) == {"kitchen", "kitchen_b"}


def test_kitchen_domain_output_is_byte_identical_to_before_domains(tmp_path):
    plan = plan_dataset(PRESETS["tiny"], 0)
    write_dataset(plan, tmp_path)
    for name, digest in TINY_SEED0_IMAGE_SETS.items():
        assert hashlib.sha256((tmp_path / actionvos.IMAGE_SETS / name).read_bytes()).hexdigest() == digest, name
    labels = hashlib.sha256()
    for path in sorted((tmp_path / actionvos.ANNOTATIONS).rglob("*"), key=lambda p: str(p.relative_to(tmp_path))):
        if path.is_file():
            labels.update(path.read_bytes())
    assert labels.hexdigest() == TINY_SEED0_LABELS


def test_kitchen_b_scenes_hold_and_narrate_the_new_classes_with_another_look():
    scenes = [sample_scene(i, 300 + i, SceneConfig(domain=KITCHEN_B)) for i in range(30)]
    old = [sample_scene(i, 300 + i, SceneConfig()) for i in range(30)]
    keys = [o.key for s in scenes for o in s.objects]
    assert all(s.domain == "kitchen_b" for s in scenes) and all(s.domain == "kitchen" for s in old)
    for key in NEW_KEYS:
        assert keys.count(key) >= 3, key
    # Narrations name the new classes often, next to old ones.
    narrated = [a for s in scenes for a in s.actions]
    new_named = [a for a in narrated if any(taxonomy.class_of_name(n).key in NEW_KEYS for n in a.named)]
    assert len(new_named) >= 0.5 * len(narrated)
    assert any(taxonomy.class_of_name(n).key not in NEW_KEYS for a in new_named for n in a.named)
    # Another look: counters, darker light, and a closer camera (larger objects and hands).
    assert {s.background.counter_kind for s in scenes} <= {"steel", "tiles", "granite"}
    assert "steel" in {s.background.counter_kind for s in scenes}
    assert max(s.background.exposure for s in scenes) < 1.0 == min(s.background.exposure for s in old)
    assert np.mean([s.hands.scale for s in scenes]) > np.mean([s.hands.scale for s in old])


def test_kitchen_b_writes_a_valid_data_set_whose_positives_include_new_classes(tmp_path):
    plan = plan_dataset(PRESETS["tiny"], 3, domain="kitchen_b")
    write_dataset(plan, tmp_path)
    data = actionvos.read_split(tmp_path, "train")
    assert len(data.segments) == 12 and not data.skipped
    new_ids = {c.class_id for c in taxonomy.KITCHEN_B_CLASSES}
    positives = [o for s in data.segments for o in s.objects.values() if o.positive and o.class_id in new_ids]
    assert positives
    entries = json.loads((tmp_path / actionvos.IMAGE_SETS / "train.json").read_text())
    assert any(taxonomy.class_of_name(o["name"]).class_id in new_ids
               for e in entries for o in e["object_classes"].values() if o["narration"])
