import numpy as np
import pytest

from actiseg_ros.data import synth, taxonomy
from actiseg_ros.data.synth_scene import (ACTION_KINDS, SceneConfig, footprint, related_objects, sample_scene)
from actiseg_ros.data.synth_sprites import FIXTURE

pytestmark = pytest.mark.slow  # full synthetic generations or command-line subprocesses

SCENES = [sample_scene(i, 1000 + i, SceneConfig()) for i in range(25)]


def test_scene_sampling_is_deterministic_per_seed():
    assert sample_scene(0, 1000, SceneConfig()) == SCENES[0]
    assert sample_scene(0, 1001, SceneConfig()) != SCENES[0]


@pytest.mark.parametrize("scene", SCENES[:10], ids=lambda s: "scene%d" % s.uid)
def test_objects_have_distinct_classes_and_names_and_do_not_overlap(scene):
    keys = [o.key for o in scene.objects]
    assert len(keys) == len(set(keys))
    assert 7 <= len(scene.objects) <= 10
    assert scene.object_names == sorted([o.name for o in scene.objects] + list(taxonomy.HAND_NAMES))
    loose = [o for o in scene.objects if o.layer != FIXTURE and o.support is None]
    for i, a in enumerate(loose):
        for b in loose[i + 1:]:
            assert not footprint(a.look, a.pose).overlaps(footprint(b.look, b.pose), 0.0), (a.name, b.name)
    for obj in scene.objects:
        if obj.support:
            sup = scene.object(obj.support)
            box = footprint(sup.look, sup.pose)
            assert box.x0 <= obj.pose.x <= box.x1 and box.y0 <= obj.pose.y <= box.y1


def test_actions_name_their_objects_with_names_of_the_right_class():
    for scene in SCENES:
        for action in scene.actions:
            assert action.verb in {v.key for v in taxonomy.VERB_CLASSES}
            assert action.target in action.named
            for name in action.named:
                cls = taxonomy.class_of_name(name)
                assert any(n in action.narration for n in cls.names), (name, action.narration)
            narrations = [a.narration for a in scene.actions]
            assert len(narrations) == len(set(narrations))


def test_all_verbs_and_motions_occur():
    motions = {a.motion for s in SCENES for a in s.actions}
    assert motions >= {"cut", "pick", "place", "open", "pour", "wipe", "shake"}
    more = {a.motion for i in range(60) for a in sample_scene(i, 5000 + i, SceneConfig()).actions}
    assert {k.motion for k in ACTION_KINDS} <= motions | more


def test_default_preset_has_at_least_three_negatives_per_segment_without_rendering():
    # The planner only keeps actions whose positives lie within the action's related objects and the
    # hands (test_synth checks that), so objects outside them are negatives: a render-free lower bound.
    preset = synth.PRESETS["default"]
    bounds = []
    for code, count in ((0, preset.train_scenes), (1, preset.val_scenes)):
        for i in range(count):
            scene = sample_scene(i, synth.scene_seed(0, code, i), SceneConfig(objects=preset.objects))
            for action in scene.actions:
                related = related_objects(scene, action) | set(taxonomy.HAND_NAMES)
                bounds.append(len(scene.object_names) - len(related))
    assert min(bounds) >= 3
    assert np.mean(bounds) >= 4.5


def test_staples_are_in_most_scenes_and_references_are_named_objects_the_action_leaves_alone():
    staples = ("sink", "tap", "chopping-board", "plate", "knife")
    share = np.mean([[s.by_key(k) is not None for k in staples] for s in SCENES], axis=0)
    assert share.min() >= 0.6, dict(zip(staples, share))
    with_refs = 0
    for scene in SCENES:
        for action in scene.actions:
            assert len(action.refs) <= 2 and len(set(action.refs)) == len(action.refs)
            involved = {action.target, *action.roles.values()}
            for ref in action.refs:
                assert ref in action.named and ref not in involved
                obj = scene.object(ref)
                assert obj.support != action.target and scene.object(action.target).support != ref
            with_refs += bool(action.refs)
    assert with_refs >= 0.6 * sum(len(s.actions) for s in SCENES)
