import numpy as np

from actiseg_ros.data.synth_labels import (hand_object_boxes, ids_in_boxes, object_flags, pixel_counts, union_box,
                                           weight_lut, weight_map)


def test_union_box_joins_and_ignores_missing():
    assert union_box((1, 2, 3, 4), (0, 5, 2, 9)) == (0, 2, 3, 9)
    assert union_box(None, (1, 1, 2, 2)) == (1, 1, 2, 2)
    assert union_box((1, 1, 2, 2), None) == (1, 1, 2, 2)


def test_hand_object_boxes_only_for_hands_in_contact():
    hand_boxes = {"left hand": (0, 0, 4, 4), "right hand": (10, 10, 12, 12)}
    object_boxes = {"onion": (3, 3, 8, 6)}
    assert hand_object_boxes({"left hand": "onion"}, hand_boxes, object_boxes) == [(0, 0, 8, 6)]
    assert hand_object_boxes({}, hand_boxes, object_boxes) == []


def test_ids_in_boxes_finds_any_pixel_of_an_object_inside_inclusive_boxes():
    labels = np.zeros((10, 10), np.uint8)
    labels[0, 0] = 1
    labels[5, 5] = 2
    labels[9, 9] = 3
    assert ids_in_boxes(labels, [(0, 0, 5, 5)]) == {1, 2}
    assert ids_in_boxes(labels, [(6, 6, 8, 8)]) == set()
    assert ids_in_boxes(labels, [(6, 6, 8, 8), (9, 9, 9, 9)]) == {3}


def test_pixel_counts_per_id():
    labels = np.array([[0, 1, 1], [2, 0, 0]], np.uint8)
    assert pixel_counts(labels, 3).tolist() == [3, 2, 1, 0]


def test_object_flags_follow_actionvos_rule():
    names = ["board", "knife", "left hand", "onion", "plate", "right hand"]
    flags = object_flags(names, ("left hand", "right hand"), named=("onion", "plate"), touched_ids={1, 4})
    assert flags["board"] == (1, 0, 1)  # in a hand-object box, not named: unnamed positive
    assert flags["onion"] == (1, 1, 1)
    assert flags["plate"] == (0, 1, 1)  # named only
    assert flags["knife"] == (0, 0, 0)
    assert flags["left hand"] == (1, 0, 1) and flags["right hand"] == (1, 0, 1)  # hands always count


def test_weight_map_classes():
    lut = weight_lut({1: (1, 0, 1), 2: (0, 1, 1), 3: (1, 1, 1), 4: (0, 0, 0)})
    labels = np.array([[0, 1, 2], [3, 4, 5]], np.uint8)
    assert weight_map(labels, lut).tolist() == [[1, 2, 2], [4, 3, 1]]
    assert weight_map(labels, lut).dtype == np.uint8
