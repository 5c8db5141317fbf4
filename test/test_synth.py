"""The synthetic ActionVOS data set: layout, labels, splits, determinism, sizes and the frame stream."""
from collections import defaultdict

import numpy as np
import pytest

from actiseg_ros.data import actionvos, synth, taxonomy
from actiseg_ros.data.synth_scene import related_objects
from actiseg_ros.data.synth_labels import WEIGHT_BOTH_CUES, WEIGHT_NEGATIVE, WEIGHT_ONE_CUE, WEIGHT_OTHER

pytestmark = pytest.mark.slow  # full synthetic generations or command-line subprocesses

TINY = synth.PRESETS["tiny"]
SPLITS = ("train", "val", "val_human")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    plan = synth.plan_dataset(TINY, seed=3)
    synth.write_dataset(plan, root)
    return root, plan


def read_all(root):
    return {split: actionvos.read_split(root, split).segments for split in SPLITS}


def test_layout_is_complete_and_reads_back_without_errors(tiny):
    root, plan = tiny
    data = read_all(root)
    assert [len(data[s]) for s in SPLITS] == [12, 4, 4]
    for split, segments in data.items():
        for segment in segments:
            assert len(segment.sparse_frames) == TINY.frames_per_segment
            first, last = int(segment.sparse_frames[0][6:16]), int(segment.sparse_frames[-1][6:16])
            assert segment.start <= first <= last <= segment.end
            for frame in segment.sparse_frames:
                rgb = actionvos.read_image(actionvos.image_path(root, split, segment.name, frame))
                assert rgb.shape == (TINY.size[1], TINY.size[0], 3)
                assert actionvos.weight_path(root, split, segment.name, frame).is_file()
    seq_ids = [s.seq_id for segs in data.values() for s in segs]
    assert len(seq_ids) == len(set(seq_ids))


def test_every_image_set_field_is_present(tiny):
    root, _ = tiny
    for split in SPLITS:
        for entry in actionvos.read_json(actionvos.image_set_path(root, split)):
            assert set(actionvos.SEGMENT_FIELDS) <= set(entry)
            assert taxonomy.class_by_id(entry["noun_class"]).key == entry["noun"]
            assert taxonomy.verb(entry["verb"]).verb_class == entry["verb_class"]
            for obj in entry["object_classes"].values():
                assert set(actionvos.OBJECT_FIELDS) == set(obj)
                assert taxonomy.class_of_name(obj["name"]).class_id == obj["class_id"]
            if split == "val_human":
                assert entry["redundant"] is False and entry["missing"] is False and entry["other"] is False
            else:
                assert not set(actionvos.EVAL_FLAGS) & set(entry)


def test_object_ids_are_one_based_alphabetical_indices(tiny):
    root, _ = tiny
    for segments in read_all(root).values():
        for segment in segments:
            names = [segment.objects[i].name for i in sorted(segment.objects)]
            assert sorted(segment.objects) == list(range(1, len(names) + 1))
            assert names == sorted(names)
            assert set(taxonomy.HAND_NAMES) <= set(names)


def test_flags_follow_the_actionvos_rule_and_weights_agree_with_them(tiny):
    root, _ = tiny
    for split, segments in read_all(root).items():
        for segment in segments:
            expected = np.full(256, WEIGHT_OTHER, np.uint8)
            for object_id, obj in segment.objects.items():
                assert obj.positive == int(obj.handbox or obj.narration)
                if obj.name in taxonomy.HAND_NAMES:
                    assert obj.handbox == 1
                if obj.narration:
                    cls = taxonomy.class_of_name(obj.name)
                    assert any(n in segment.narration for n in cls.names)
                expected[object_id] = (WEIGHT_NEGATIVE if not obj.positive else
                                       WEIGHT_BOTH_CUES if obj.handbox and obj.narration else WEIGHT_ONE_CUE)
            for frame in segment.sparse_frames:
                labels = actionvos.read_label_png(actionvos.annotation_path(root, split, segment.name, frame))
                weights = actionvos.read_label_png(actionvos.weight_path(root, split, segment.name, frame))
                assert set(np.unique(weights)) <= {1, 2, 3, 4}
                assert np.array_equal(weights, expected[labels])


def test_same_scene_appears_with_different_narrations_and_positive_sets(tiny):
    root, _ = tiny
    by_video = defaultdict(list)
    for segment in read_all(root)["train"]:
        by_video[segment.video].append(segment)
    assert len(by_video) == TINY.train_scenes
    for segments in by_video.values():
        assert len(segments) == TINY.actions_per_scene
        assert len({s.narration for s in segments}) == len(segments)
        object_sets = {tuple(o.name for o in s.objects.values()) for s in segments}
        assert len(object_sets) == 1  # the same objects (and ids) in every segment of the scene
        positive_sets = {frozenset(o.name for o in s.objects.values() if o.positive) for s in segments}
        assert len(positive_sets) == len(segments)
        # A text-blind model sees the same objects but must answer differently: some object flips.
        flips = [n for n in segments[0].objects
                 if len({s.objects[n].positive for s in segments}) == 2]
        assert flips


def test_segments_of_a_scene_show_the_same_layout(tiny):
    _, plan = tiny
    scene_plan = plan.split("train")[0].scene_plan
    from actiseg_ros.data.synth_render import SceneRenderer
    renderer = SceneRenderer(scene_plan.scene, 96, 54, labels_only=True)
    starts = []
    for planned in scene_plan.actions:
        state = synth.frame_state(scene_plan.scene, planned.action, 0.0, 0)  # the action about to begin
        starts.append(renderer.render(state, 0).labels)
    assert all(np.array_equal(starts[0], other) for other in starts[1:])


def test_train_and_val_scenes_are_disjoint_and_val_human_shares_val_scenes(tiny):
    root, plan = tiny
    data = read_all(root)
    train_videos = {s.video for s in data["train"]}
    val_videos = {s.video for s in data["val"]}
    assert not train_videos & val_videos
    assert {s.video for s in data["val_human"]} <= val_videos
    assert not {s.name for s in data["val"]} & {s.name for s in data["val_human"]}
    train_seeds = {i.scene_plan.scene.seed for i in plan.split("train")}
    assert not train_seeds & {i.scene_plan.scene.seed for i in plan.split("val")}


def test_positives_are_related_to_the_action_and_unnamed_positives_occur():
    plan = synth.plan_dataset(synth.Preset("probe", (64, 36), 12, 0, 4, 5, (7, 10)), seed=11)
    unnamed = named_only = 0
    for item in plan.segments:
        scene = item.scene_plan.scene
        action = item.planned.action
        related = related_objects(scene, action) | set(taxonomy.HAND_NAMES)
        for name, (handbox, narration, positive) in item.planned.flags.items():
            if positive:
                assert name in related or name in action.refs
            if name in action.refs:
                # A named reference ("... next to the sink") is positive by the narration; the hands only
                # meet it where it is related to the action (the tap the plate is rinsed under).
                assert narration and (not handbox or name in related)
            if positive and name not in taxonomy.HAND_NAMES:
                unnamed += int(not narration)
                named_only += int(narration and not handbox)
    assert unnamed >= 5  # e.g. the board under the food being cut, the bottle poured from
    assert named_only >= 20  # e.g. the glass poured into, the sink the cup is picked up next to
    stats = synth.dataset_stats(plan)["train"]
    assert stats["negatives_per_segment"] >= 3
    assert stats["verbs"] >= 6


def test_generation_is_deterministic_per_seed(tiny, tmp_path):
    root, _ = tiny
    again = tmp_path / "again"
    replan = synth.plan_dataset(TINY, seed=3)
    for split in SPLITS:  # the ImageSets bytes follow from the plan alone
        other = tmp_path / ("json_" + split)
        writer = actionvos.LayoutWriter(other)
        for item in replan.split(split):
            writer.add_entry(split, synth.to_segment(item))
        writer.close()
        assert actionvos.image_set_path(root, split).read_bytes() == actionvos.image_set_path(other, split).read_bytes()
    some = synth.DatasetPlan(preset=replan.preset, seed=replan.seed, segments=replan.segments[::5])
    synth.write_dataset(some, again)
    written = sorted((again / actionvos.IMAGES).rglob("*.jpg")) + sorted((again / actionvos.ANNOTATIONS).rglob("*.png"))
    assert len(written) == 2 * len(some.segments) * TINY.frames_per_segment
    for path in written:
        assert path.read_bytes() == (root / path.relative_to(again)).read_bytes()
    different = synth.plan_dataset(TINY, seed=4)
    assert [s.planned.action.narration for s in different.segments] != \
        [s.planned.action.narration for s in replan.segments]


def test_any_size_gives_the_same_labels_json_and_frames_of_that_size(tiny, tmp_path):
    root, plan = tiny
    odd = tmp_path / "odd"
    small = synth.DatasetPlan(preset=plan.preset, seed=plan.seed, segments=plan.segments[:3])
    synth.write_dataset(small, odd, size=(77, 45))
    segments = actionvos.read_split(odd, "train").segments
    reference = actionvos.read_json(actionvos.image_set_path(root, "train"))[:3]
    assert [s.to_json() for s in segments] == reference
    for segment in segments:
        frame = segment.sparse_frames[0]
        assert actionvos.read_image(actionvos.image_path(odd, "train", segment.name, frame)).shape == (45, 77, 3)
        labels = actionvos.read_label_png(actionvos.annotation_path(odd, "train", segment.name, frame))
        assert labels.shape == (45, 77)


def test_scene_stream_renders_a_continuous_video_matching_the_data_set(tiny):
    stream = synth.SceneStream(seed=5, size=(96, 64), actions=3)
    assert len(stream) == sum(p.action.duration for p in stream.plan.actions)
    timeline = stream.timeline
    assert timeline[0][0] == 0 and all(a[1] + 1 == b[0] for a, b in zip(timeline, timeline[1:]))
    planned = stream.plan.actions[1]
    frame = stream.render(planned.frames[2])
    assert frame.narration == planned.action.narration and frame.action_index == 1 and frame.in_act
    assert frame.rgb.shape == (64, 96, 3) and frame.labels.shape == (64, 96)
    assert {i: o.positive for i, o in frame.objects.items()} == \
        {i + 1: planned.flags[n][2] for i, n in enumerate(stream.scene.object_names)}
    assert set(np.unique(frame.labels)) - {0} <= set(frame.objects)
    # The joint between two actions is no jump: the label images on either side nearly agree.
    joint = timeline[1][0]
    before, after = stream.render(joint - 1).labels, stream.render(joint).labels
    assert (before != after).mean() < 0.05
    with pytest.raises(IndexError):
        stream.render(len(stream))
    assert next(iter(stream)).index == 0
