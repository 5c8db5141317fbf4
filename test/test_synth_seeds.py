"""Every seed works (issue #15): a scene whose seed's own random stream runs out of layout attempts is
resampled from derived streams (synth_scene.layout_rng), deterministically, and every scene that laid out
before keeps exactly its old layout, so the shipped model's data set (default preset, seed 0) is unchanged.

Why a scene could not be laid out: objects are placed by rejection sampling on a crowded counter and about
one layout attempt in eight succeeds, so the attempts a scene needs are geometric and 0.875 ** 50, about one
scene in 800, used up the 50 attempts of its single stream; with 120+ scenes per default data set, 1 seed
in 6 or 7 aborted. With 40 streams a scene would need 2000 failed attempts (0.875 ** 2000 < 1e-100).
"""
import hashlib
import json

import numpy as np
import pytest

from actiseg_ros.data import actionvos, synth
from actiseg_ros.data.synth_scene import SceneConfig, layout_rng, sample_scene
from conftest import run_actiseg

pytestmark = pytest.mark.slow  # full synthetic generations or command-line subprocesses

# Scene seeds whose own stream fails all 50 attempts (default preset objects 7-10): scenes of data set seeds
# 1 (train scene 83), 5 (val scene 17) and 8 (train scene 69), which made `actiseg synth --seed 1/5/8` abort.
EXHAUSTED_SCENE_SEEDS = (1150519518, 2350096189, 3086474439)
# Tiny-preset data set seeds that aborted the same way before: 259 (val scene 0) among the full plans of seeds
# 0-399, 605, 722, 840 and 1154 from scanning the scene layouts of seeds 400-1154.
TINY_GENERATIONS_THAT_ABORTED = ((605, "128x96"), (605, "96x64"), (259, "128x96"))
# synth.plan_dataset(PRESETS['tiny'], 0) as planned before the change (see plan_digest).
TINY_SEED_0_DIGEST = "5f3100111f450bcdd31c8ce0480af6a05a4d0dcbb0b560316e4bd8f0b8ef37dc"


def plan_digest(plan) -> str:
    """What a plan decides (splits, ImageSets entries, annotated frames, scene seeds, object poses)."""
    items = []
    for item in plan.segments:
        scene = item.scene_plan.scene
        items.append([item.split, synth.to_segment(item).to_json(), item.planned.frames, scene.seed,
                      [[o.name, round(o.pose.x, 6), round(o.pose.y, 6), round(o.pose.angle, 6)]
                       for o in scene.objects]])
    return hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()


def config_of(preset) -> SceneConfig:
    return SceneConfig(objects=preset.objects, candidate_actions=max(9, 2 * preset.actions_per_scene + 1))


@pytest.mark.parametrize("seed", EXHAUSTED_SCENE_SEEDS)
def test_a_scene_whose_stream_runs_out_is_laid_out_from_a_derived_stream(seed, monkeypatch):
    from actiseg_ros.data import synth_scene

    config = config_of(synth.PRESETS["default"])
    with monkeypatch.context() as patch:
        patch.setattr(synth_scene, "LAYOUT_STREAMS", 1)  # the seed's own stream only: where it aborted
        with pytest.raises(RuntimeError, match="in 50 attempts on 1 random streams"):
            sample_scene(0, seed, config)
    scene = sample_scene(0, seed, config)
    assert repr(scene) == repr(sample_scene(0, seed, config))  # deterministic
    assert scene.seed == seed and len(scene.objects) >= config.objects[0] and len(scene.actions) >= 2
    planned = synth.plan_scene(83, seed, 4, 5, config.objects)  # and the planner gets its 4 actions
    assert len(planned.actions) == 4


def test_derived_streams_differ_from_the_seed_and_from_each_other():
    draws = [layout_rng(12345, k).random(4).tolist() for k in range(4)]
    assert draws[0] == np.random.default_rng(12345).random(4).tolist()  # stream 0 is the seed's own
    assert len({tuple(d) for d in draws}) == 4


def test_a_configuration_that_never_lays_out_fails_after_every_stream(monkeypatch):
    from actiseg_ros.data import synth_scene

    calls = []
    monkeypatch.setattr(synth_scene, "_try_scene", lambda *args: calls.append(args[1]))  # always None
    with pytest.raises(RuntimeError, match=r"scene 3 \(seed 7\) in 2000 attempts on 40 random streams: 7 to 9 "
                                           "objects do not fit on the counter"):
        sample_scene(3, 7, SceneConfig(objects=(7, 9)))
    assert len(calls) == synth_scene.LAYOUT_ATTEMPTS * synth_scene.LAYOUT_STREAMS == 2000


def test_scenes_that_laid_out_before_are_unchanged():
    assert plan_digest(synth.plan_dataset(synth.PRESETS["tiny"], 0)) == TINY_SEED_0_DIGEST


@pytest.mark.parametrize("preset", ["tiny", "default"])
def test_layout_succeeds_for_200_data_set_seeds(preset):
    """The planning stage that aborted (laying out a scene), for the first scene of 200 data set seeds with
    the preset's object range (about 10 s of CPU each; the full plans of tiny seeds 0-399 were checked
    outside the suite)."""
    config = config_of(synth.PRESETS[preset])
    for seed in range(200):
        scene = sample_scene(0, synth.scene_seed(seed, 0, 0), config)
        assert config.objects[0] <= len(scene.objects) and len(scene.actions) >= 2


def test_planning_does_not_depend_on_the_output_size():
    """--size only changes rendering (flags are measured at REFERENCE_SIZE), so one plan serves every size."""
    import inspect

    assert "size" not in inspect.signature(synth.plan_dataset).parameters
    assert "size" in inspect.signature(synth.write_dataset).parameters


@pytest.mark.parametrize("seed,size", TINY_GENERATIONS_THAT_ABORTED)
def test_tiny_generation_of_a_seed_that_aborted(tmp_path, seed, size):
    out = tmp_path / "data"
    done = run_actiseg(["synth", "--preset", "tiny", "--seed", str(seed), "--size", size, "--out", str(out)])
    assert done.returncode == 0, done.stderr
    width, height = (int(v) for v in size.split("x"))
    for split, count in (("train", 12), ("val", 4), ("val_human", 4)):
        segments = actionvos.read_split(out, split).segments  # files checked: frames, masks, ids
        assert len(segments) == count
        frame = segments[0].sparse_frames[0]
        assert actionvos.read_image(actionvos.image_path(out, split, segments[0].name, frame)).shape == (
            height, width, 3)


def test_a_negative_seed_is_refused_clearly(tmp_path):
    done = run_actiseg(["synth", "--preset", "tiny", "--seed", "-1", "--out", str(tmp_path / "data")])
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "actiseg synth: --seed must be 0 or more, got -1" in done.stderr
    assert not (tmp_path / "data").exists()
