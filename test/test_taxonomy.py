import re

import pytest

from actiseg_ros.data import taxonomy
from actiseg_ros.data.noise import HAND_CLASS_IDS, is_hand, parse_vocabulary
from actiseg_ros.data.synth_sprites import SHAPES


def test_at_least_16_object_classes_each_with_two_or_more_names():
    assert len(taxonomy.OBJECT_CLASSES) >= 16
    for cls in taxonomy.OBJECT_CLASSES:
        assert len(cls.names) >= 2, cls.key
        assert len(set(cls.names)) == len(cls.names), cls.key


def test_names_and_ids_are_unique_across_classes():
    names = [n for c in taxonomy.KNOWN_CLASSES for n in c.names]
    assert len(names) == len(set(names))
    ids = [c.class_id for c in taxonomy.KNOWN_CLASSES]
    assert len(ids) == len(set(ids))
    keys = [c.key for c in taxonomy.KNOWN_CLASSES]
    assert len(keys) == len(set(keys))


def test_class_ids_are_the_stable_epic_and_visor_ids():
    # EPIC-KITCHENS-100 noun classes; VISOR hands.
    expected = {"knife": 4, "chopping board": 18, "fridge": 12, "tap": 0, "onion": 16, "cup": 13, "pan": 5,
                "lid": 6, "drawer": 8, "plate": 2, "left hand": 300, "right hand": 301}
    for name, class_id in expected.items():
        assert taxonomy.class_of_name(name).class_id == class_id


def test_the_synonyms_named_in_the_issue_share_a_class():
    assert {taxonomy.class_of_name(n).key for n in ("knife", "chef knife", "cleaver")} == {"knife"}
    assert {taxonomy.class_of_name(n).key for n in ("chopping board", "cutting board")} == {"chopping-board"}
    assert {taxonomy.class_of_name(n).key for n in ("fridge", "fridge door")} == {"fridge"}


def test_hands_are_two_classes_the_noise_module_recognises():
    assert taxonomy.HAND_NAMES == ("left hand", "right hand")
    assert {c.class_id for c in taxonomy.HAND_CLASSES} == set(HAND_CLASS_IDS)
    for cls in taxonomy.HAND_CLASSES:
        assert is_hand(cls.name, cls.class_id)
        assert taxonomy.is_hand_class(cls.class_id)
    assert not taxonomy.is_hand_class(taxonomy.class_of_name("knife").class_id)


def test_lookups_normalise_case_and_spaces_and_name_unknowns():
    assert taxonomy.class_of_name("  Chef   Knife ").key == "knife"
    with pytest.raises(KeyError, match="wok"):
        taxonomy.class_of_name("wok")
    assert taxonomy.class_of_name("Fish Slice").key == "spatula"  # a held-out domain's class (kitchen_b)
    with pytest.raises(KeyError, match="nope"):
        taxonomy.object_class("nope")
    with pytest.raises(KeyError, match="999"):
        taxonomy.class_by_id(999)
    with pytest.raises(KeyError, match="fly"):
        taxonomy.verb("fly")
    assert taxonomy.class_by_id(18).name == "chopping board"


def test_keys_are_file_name_safe():
    for key in [c.key for c in taxonomy.KNOWN_CLASSES] + [v.key for v in taxonomy.VERB_CLASSES]:
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", key), key


def test_at_least_ten_verbs_with_unique_classes():
    assert len(taxonomy.VERB_CLASSES) >= 10
    assert len({v.verb_class for v in taxonomy.VERB_CLASSES}) == len(taxonomy.VERB_CLASSES)
    assert taxonomy.verb("cut").verb_class == 7 and taxonomy.verb("take").verb_class == 0


def test_every_object_class_can_be_drawn_and_shape_names_exist():
    assert {c.key for c in taxonomy.OBJECT_CLASSES + taxonomy.KITCHEN_B_CLASSES} == set(SHAPES)
    for name, shape in taxonomy.SHAPE_OF_NAME.items():
        taxonomy.class_of_name(name)  # raises if the name is not in the vocabulary
        assert taxonomy.shape_of_name(name) == shape
    assert taxonomy.shape_of_name("knife") == "default"


def test_vocabulary_feeds_the_noise_injector():
    vocab = taxonomy.vocabulary()
    parsed = parse_vocabulary({str(k): list(v) for k, v in vocab.items()}, "taxonomy")
    assert parsed[4] == ["knife", "chef knife", "cleaver"]
    assert 300 in parsed and 301 in parsed
    assert 300 not in taxonomy.vocabulary(include_hands=False)
