"""ActiSeg-NL noise as pure functions: text flips / substitutions on hand-made segments, dilation on hand-made masks."""
import copy
import math

import numpy as np
import pytest

from actiseg_ros.data.actionvos import ObjectInfo, Segment, build_prompt
from actiseg_ros.data import noise

# class id -> names; 300/301 are VISOR's hands; 27 (water) has a single name
CLASS_NAMES = {
    4: ["knife", "chef knife", "paring knife"],
    12: ["fridge", "fridge door"],
    18: ["chopping board", "cutting board", "board"],
    27: ["water"],
    41: ["carrot", "carrot bit"],
    300: ["left hand"],
    301: ["right hand"],
}


def make_segments(n_segments, seed=0):
    """n_segments segments of 5 objects each, names drawn from CLASS_NAMES."""
    pick = np.random.default_rng(seed)
    classes = sorted(CLASS_NAMES)
    segments = []
    for index in range(n_segments):
        chosen = [classes[i] for i in pick.choice(len(classes), size=5, replace=False)]
        names = sorted(CLASS_NAMES[c][int(pick.integers(len(CLASS_NAMES[c])))] for c in chosen)
        objects = {}
        for object_id, name in enumerate(names, start=1):
            handbox = int(pick.integers(2))
            narration = int(pick.integers(2))
            objects[object_id] = ObjectInfo(id=object_id, name=name, class_id=CLASS_NAMES_BY_NAME[name],
                                            handbox=handbox, narration=narration,
                                            positive=int(handbox or narration))
        segments.append(Segment(seq_id=index + 1, video="P01_01", start=10 * index, end=10 * index + 9,
                                narration="cut carrot %d" % index, verb="cut", verb_class=7, noun="carrot",
                                noun_class=41, sparse_frames=["frame_%010d.jpg" % (10 * index)],
                                objects=objects))
    return segments


CLASS_NAMES_BY_NAME = {name: class_id for class_id, names in CLASS_NAMES.items() for name in names}


def vocabulary():
    return {class_id: tuple(sorted(names)) for class_id, names in CLASS_NAMES.items()}


def expressions(segments):
    return [(s, i, s.objects[i]) for s in segments for i in sorted(s.objects)]


def within_three_sigma(measured, rate, n):
    return abs(measured - rate) <= 3 * math.sqrt(rate * (1 - rate) / n)


# --- vocabulary ----------------------------------------------------------------------------------------

def test_vocabulary_is_every_class_name_pair_seen_plus_the_file():
    segments = make_segments(200)
    found = noise.build_vocabulary(segments)
    seen = {(o.class_id, o.name) for _s, _i, o in expressions(segments)}
    assert {(c, n) for c, names in found.items() for n in names} == seen
    extended = noise.build_vocabulary(segments, {27: ["tap water"], 999: ["blender"]})
    assert extended[27] == ("tap water", "water") and extended[999] == ("blender",)


@pytest.mark.parametrize("content, fragment", [
    ([["knife"]], "expected an object"),
    ({"knife": ["knife"]}, "not an integer"),
    ({"4": []}, "non-empty list"),
    ({"4": "knife"}, "non-empty list"),
    ({"4": ["knife", ""]}, "non-empty list"),
])
def test_bad_vocabulary_files_are_rejected_naming_the_file(content, fragment):
    with pytest.raises(ValueError, match=fragment) as err:
        noise.parse_vocabulary(content, "vocab.json")
    assert "vocab.json" in str(err.value)


# --- category flip ------------------------------------------------------------------------------------

def test_flip_rate_matches_request_within_three_sigma_on_2000_expressions():
    segments = make_segments(400)  # 2000 expressions
    result = noise.apply_text_noise(segments, vocabulary(), 0.4, 0.0, np.random.default_rng(7))
    assert result.counts["expressions"] == 2000
    measured = noise.text_noise_rates(result.counts)["flip"]
    assert measured == result.counts["flip"] / 2000
    assert within_three_sigma(measured, 0.4, 2000), measured


def test_flipped_class_is_always_different_and_the_name_belongs_to_it():
    segments = make_segments(300)
    result = noise.apply_text_noise(segments, vocabulary(), 0.6, 0.0, np.random.default_rng(1))
    flips = [c for c in result.changes if c.kind == "flip"]
    assert len(flips) > 700
    for change in flips:
        assert change.class_id != change.class_id_org
        assert change.name in CLASS_NAMES[change.class_id]
    # every other class gets picked: the choice is uniform over all other classes, hands included
    assert {c.class_id for c in flips} == set(CLASS_NAMES)


def test_flip_target_classes_are_uniform():
    segments = make_segments(400)
    result = noise.apply_text_noise(segments, vocabulary(), 1.0, 0.0, np.random.default_rng(3))
    from_knife = [c.class_id for c in result.changes if c.class_id_org == 4]
    counts = np.array([from_knife.count(c) for c in CLASS_NAMES if c != 4])
    expected = len(from_knife) / 6
    # chi-square with 5 degrees of freedom; 20.5 is its 0.999 quantile
    assert ((counts - expected) ** 2 / expected).sum() < 20.5, counts


def test_text_noise_rebuilds_the_prompt_and_keeps_originals_and_everything_else():
    segments = make_segments(100)
    before = copy.deepcopy(segments)
    result = noise.apply_text_noise(segments, vocabulary(), 0.4, 0.5, np.random.default_rng(5))
    assert segments == before, "the input segments must not be modified"
    assert len(result.segments) == len(segments)
    for clean, noisy in zip(segments, result.segments):
        assert (noisy.name, noisy.narration, noisy.sparse_frames, noisy.extra) == \
               (clean.name, clean.narration, clean.sparse_frames, clean.extra)
        assert sorted(noisy.objects) == sorted(clean.objects)
        for object_id, obj in noisy.objects.items():
            org = clean.objects[object_id]
            assert (obj.handbox, obj.narration, obj.positive) == (org.handbox, org.narration, org.positive)
            assert obj.extra["exp"] == build_prompt(obj.name, clean.narration) == noisy.prompt(object_id)
            assert obj.extra["exp_org"] == build_prompt(org.name, clean.narration)
            assert (obj.extra["class_id_org"], obj.extra["name_org"]) == (org.class_id, org.name)
            changed = (obj.class_id, obj.name) != (org.class_id, org.name)
            assert changed == (obj.extra["text_noise"] in ("flip", "substitute"))


def test_noise_sets_are_deterministic_and_nested_across_rates():
    segments = make_segments(200)

    def run(rate, seed):
        return noise.apply_text_noise(segments, vocabulary(), rate, 0.3, np.random.default_rng(seed))

    first, again = run(0.4, 11), run(0.4, 11)
    assert [c.to_json() for c in first.changes] == [c.to_json() for c in again.changes]
    assert [s.to_json() for s in first.segments] == [s.to_json() for s in again.segments]
    other_seed = run(0.4, 12)
    assert [c.to_json() for c in first.changes] != [c.to_json() for c in other_seed.changes]
    low = {(c.segment, c.object_id) for c in run(0.2, 11).changes if c.kind == "flip"}
    high = {(c.segment, c.object_id) for c in first.changes if c.kind == "flip"}
    assert low and low < high


def test_flip_needs_a_second_class():
    lonely = make_segments(1)[0]
    lonely.objects = {1: ObjectInfo(1, "knife", 4, 1, 1, 1)}
    with pytest.raises(ValueError, match="no other class"):
        noise.apply_text_noise([lonely], {4: ("knife",)}, 1.0, 0.0, np.random.default_rng(0))


@pytest.mark.parametrize("flip, sub", [(-0.1, 0.0), (1.2, 0.0), (0.0, 1.01), (0.0, -1.0)])
def test_rates_outside_the_unit_interval_are_rejected(flip, sub):
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        noise.apply_text_noise(make_segments(2), vocabulary(), flip, sub, np.random.default_rng(0))


# --- within-category substitution ---------------------------------------------------------------------

def test_substitution_keeps_the_class_changes_the_name_and_matches_its_rate():
    segments = make_segments(400)
    result = noise.apply_text_noise(segments, vocabulary(), 0.0, 0.5, np.random.default_rng(2))
    subs = [c for c in result.changes if c.kind == "substitute"]
    for change in subs:
        assert change.class_id == change.class_id_org
        assert change.name != change.name_org and change.name in CLASS_NAMES[change.class_id]
    single_name = sum(1 for _s, _i, o in expressions(segments) if len(CLASS_NAMES[o.class_id]) == 1)
    assert single_name > 0 and result.counts["not_substitutable"] == single_name
    substitutable = 2000 - single_name
    rates = noise.text_noise_rates(result.counts)
    assert rates["substitution"] == len(subs) / substitutable
    assert within_three_sigma(rates["substitution"], 0.5, substitutable), rates
    assert rates["substitution_effective"] == len(subs) / 2000


def test_substitution_is_drawn_only_for_non_flipped_expressions():
    segments = make_segments(400)
    result = noise.apply_text_noise(segments, vocabulary(), 0.4, 0.5, np.random.default_rng(4))
    counts = result.counts
    assert counts["flip"] + counts["substitute"] + counts["none"] + counts["not_substitutable"] == 2000
    rates = noise.text_noise_rates(counts)
    substitutable = 2000 - counts["flip"] - counts["not_substitutable"]
    assert within_three_sigma(rates["substitution"], 0.5, substitutable), rates
    assert within_three_sigma(rates["flip"], 0.4, 2000), rates


# --- hands ---------------------------------------------------------------------------------------------

def test_hands_are_recognised_by_name_or_visor_class_id():
    assert noise.is_hand("Left Hand", 7) and noise.is_hand("glove", 301) and not noise.is_hand("handle", 8)


def test_protected_hands_stay_clean_and_are_never_a_flip_target():
    segments = make_segments(300)
    result = noise.apply_text_noise(segments, vocabulary(), 1.0, 1.0, np.random.default_rng(6), protect_hands=True)
    hands = [c for c in result.changes if c.class_id_org in (300, 301)]
    assert hands and all(c.kind == "protected" and c.name == c.name_org for c in hands)
    others = [c for c in result.changes if c.class_id_org not in (300, 301)]
    assert all(c.kind == "flip" and c.class_id not in (300, 301) for c in others)
    assert noise.text_noise_rates(result.counts)["flip"] == 1.0


# --- kernel scaling ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kernel, height, width, expected", [
    (9, 480, 854, 9), (15, 480, 854, 15), (21, 480, 854, 21),
    (9, 240, 427, 5),    # 4.5 -> nearest odd 5
    (15, 240, 427, 7),   # 7.5 -> 7
    (21, 240, 427, 11),  # 10.5 -> 11
    (9, 1080, 1920, 21),  # 20.24 -> 21
    (3, 120, 214, 1),    # never below 1
    (9, 480, 480, 7),    # square frame: sqrt(480*480 / (854*480)) * 9 = 6.75 -> 7 (the shorter side would keep 9)
])
def test_kernel_scales_with_the_square_root_of_the_area_to_the_nearest_odd_size(kernel, height, width, expected):
    assert noise.scaled_kernel(kernel, height, width) == expected


@pytest.mark.parametrize("kernel", [0, -3, 4, 8, 2.0, True])
def test_even_or_non_positive_kernels_are_rejected(kernel):
    with pytest.raises(ValueError, match="positive odd integer"):
        noise.check_kernel(kernel)


# --- dilation ------------------------------------------------------------------------------------------

def square_labels(height=480, width=854, top=200, left=400, size=20, value=1):
    labels = np.zeros((height, width), dtype=np.uint8)
    labels[top:top + size, left:left + size] = value
    return labels


def test_k9_at_854x480_grows_a_square_by_4_px_on_each_side():
    labels = square_labels()
    result = noise.dilate_positives(labels, [1], noise.scaled_kernel(9, 480, 854))
    ys, xs = np.nonzero(result.labels == 1)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (196, 223, 396, 423)
    assert np.count_nonzero(result.labels == 1) == 28 * 28
    assert result.added == {1: 28 * 28 - 20 * 20} and result.background_overwritten == 28 * 28 - 400


def test_the_scaled_kernel_is_used_at_427x240():
    labels = square_labels(240, 427, 100, 200, 10)
    kernel = noise.scaled_kernel(9, 240, 427)
    result = noise.dilate_positives(labels, [1], kernel)
    ys, xs = np.nonzero(result.labels == 1)
    assert result.kernel == 5
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (98, 111, 198, 211)


def test_mean_displacement_is_the_mean_distance_of_added_pixels_to_the_original_mask():
    labels = square_labels()
    result = noise.dilate_positives(labels, [1], 9)
    ys, xs = np.nonzero(result.owner)
    dy = np.maximum(0, np.maximum(200 - ys, ys - 219))
    dx = np.maximum(0, np.maximum(400 - xs, xs - 419))
    brute_force = np.hypot(dy, dx).mean()
    assert result.displacement_sum / result.pixels_changed == pytest.approx(brute_force, rel=1e-5)


def test_dilated_positive_overwrites_a_neighbouring_negative_but_never_another_positive():
    labels = np.zeros((60, 90), dtype=np.uint8)
    labels[20:40, 20:40] = 1  # positive
    labels[20:40, 40:50] = 2  # negative, touching 1 on its right
    labels[40:50, 20:40] = 3  # another positive, touching 1 below
    result = noise.dilate_positives(labels, [1, 3], 9)
    assert np.all(result.labels[20:40, 40:44] == 1), "the negative's first 4 columns are taken over"
    assert np.all(result.labels[20:40, 44:50] == 2)
    assert np.array_equal(result.labels[labels == 3], np.full(200, 3)), "an original positive keeps its pixels"
    assert np.all(result.labels[labels == 1] == 1)
    assert result.negative_overwritten == 20 * 4 and result.negative_pixels == 200
    assert result.pixels_changed == np.count_nonzero(result.labels != labels)
    assert np.array_equal(result.owner > 0, result.labels != labels)


def test_contested_ring_pixels_go_to_the_nearer_positive_and_ties_to_the_lower_id():
    labels = np.zeros((40, 60), dtype=np.uint8)
    labels[10:30, 10:20] = 5
    labels[10:30, 23:33] = 2  # gap of three columns (20, 21, 22) between the two positives
    result = noise.dilate_positives(labels, [2, 5], 9)
    assert np.all(result.labels[10:30, 20] == 5)  # 1 px from 5, 3 px from 2
    assert np.all(result.labels[10:30, 22] == 2)
    assert np.all(result.labels[10:30, 21] == 2)  # 2 px from both: the lower id wins


def test_negatives_and_absent_positives_are_not_dilated():
    labels = np.zeros((30, 30), dtype=np.uint8)
    labels[10:20, 10:20] = 2
    result = noise.dilate_positives(labels, [1, 7], 9)
    assert np.array_equal(result.labels, labels) and result.pixels_changed == 0 and result.added == {}
    assert result.displacement_sum == 0.0


def test_k1_changes_nothing_and_bad_inputs_are_rejected():
    labels = square_labels(50, 50, 10, 10, 10)
    assert noise.dilate_positives(labels, [1], 1).pixels_changed == 0
    with pytest.raises(ValueError, match="positive odd"):
        noise.dilate_positives(labels, [1], 4)
    with pytest.raises(ValueError, match="2-D uint8"):
        noise.dilate_positives(labels.astype(np.int32), [1], 3)


# --- weights -------------------------------------------------------------------------------------------

def test_weight_class_follows_the_handbox_and_narration_flags():
    assert noise.positive_weight_class(ObjectInfo(1, "knife", 4, 1, 1, 1)) == 4
    assert noise.positive_weight_class(ObjectInfo(1, "knife", 4, 1, 0, 1)) == 2
    assert noise.positive_weight_class(ObjectInfo(1, "knife", 4, 0, 1, 1)) == 2


def test_weights_of_taken_pixels_become_the_new_owners_class_and_nothing_else_changes():
    labels = np.zeros((60, 90), dtype=np.uint8)
    labels[20:40, 20:40] = 1
    labels[20:40, 40:50] = 2
    labels[5:15, 60:70] = 3
    weights = np.ones_like(labels)
    weights[labels == 1] = 4
    weights[labels == 2] = 3
    weights[labels == 3] = 2
    result = noise.dilate_positives(labels, [1, 3], 5)
    new = noise.update_weights(weights, result.owner, {1: 4, 3: 2})
    taken = result.owner > 0
    assert np.all(new[result.labels == 1] == 4) and np.all(new[result.labels == 3] == 2)
    assert np.array_equal(new[~taken], weights[~taken])
    assert np.all(new[result.labels == 2] == 3) and np.all(new[result.labels == 0] == 1)
    with pytest.raises(ValueError, match="weight map"):
        noise.update_weights(weights[:10], result.owner, {1: 4})


# --- mask dilation rate ------------------------------------------------------------------------------------

def test_a_positive_left_undilated_keeps_its_pixels_and_is_not_eaten_by_a_dilated_neighbour():
    labels = np.zeros((60, 90), dtype=np.uint8)
    labels[20:40, 20:40] = 1  # positive, chosen
    labels[40:50, 20:40] = 3  # positive, not chosen, touching 1 below
    labels[20:40, 40:50] = 2  # negative
    everything = noise.dilate_positives(labels, [1, 3], 9)
    only_one = noise.dilate_positives(labels, [1, 3], 9, dilate_ids=[1])
    assert set(only_one.added) == {1} and set(everything.added) == {1, 3}
    assert np.all(only_one.labels[labels == 3] == 3), "the undilated positive keeps its pixels"
    assert np.all(only_one.labels[50:54, 20:40] == 0), "and grows no ring"
    assert np.all(only_one.labels[20:40, 40:44] == 1), "the chosen one still takes over the negative"
    assert only_one.negative_pixels == everything.negative_pixels == 200
    assert np.array_equal(noise.dilate_positives(labels, [1, 3], 9, dilate_ids=None).labels, everything.labels)


def test_mask_selection_rate_one_chooses_everything_without_drawing():
    frames = [[1, 4, 5], [], [2]]
    assert noise.select_masks(frames, 1.0, seed=0) == frames
    assert noise.select_masks(frames, 0.0, seed=0) == [[], [], []]


def test_mask_selection_matches_its_rate_and_is_nested_and_deterministic():
    frames = [[1, 2, 3, 4, 5]] * 2000  # 10000 masks
    low, high = noise.select_masks(frames, 0.2, seed=7), noise.select_masks(frames, 0.4, seed=7)
    chosen = sum(len(ids) for ids in low)
    assert abs(chosen / 10000 - 0.2) < 3 * math.sqrt(0.2 * 0.8 / 10000)
    assert all(set(a) <= set(b) for a, b in zip(low, high)), "rate 0.2's masks are a subset of rate 0.4's"
    assert noise.select_masks(frames, 0.2, seed=7) == low and noise.select_masks(frames, 0.2, seed=8) != low
    with pytest.raises(ValueError, match="within"):
        noise.select_masks(frames, 1.5, seed=0)
