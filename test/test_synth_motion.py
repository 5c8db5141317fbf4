"""The hand and object motion of each verb, checked on frame states (no pixels)."""
import math

import numpy as np
import pytest

from actiseg_ros.data.synth_motion import MOTIONS, camera_at, frame_state
from actiseg_ros.data.synth_scene import SceneConfig, footprint, sample_scene
from actiseg_ros.data.taxonomy import HAND_NAMES

pytestmark = pytest.mark.slow  # full synthetic generations or command-line subprocesses

ACT = np.linspace(0.21, 0.79, 59)


def find_action(motion: str, key: str | None = None):
    """The first sampled scene (seeds 0..) with a candidate action of this motion (and target class)."""
    for seed in range(400):
        scene = sample_scene(seed, seed, SceneConfig())
        for action in scene.actions:
            if action.motion == motion and (key is None or scene.object(action.target).key == key):
                return scene, action
    raise AssertionError("no scene has a %s action" % motion)


def direction_changes(values) -> int:
    steps = np.sign(np.diff(np.asarray(values, float)))
    steps = steps[steps != 0]
    return int(np.sum(steps[1:] != steps[:-1]))


@pytest.mark.parametrize("motion", sorted(MOTIONS))
def test_every_action_starts_and_ends_at_rest_so_a_stream_is_continuous(motion):
    scene, action = find_action(motion)
    for t in (0.0, 1.0):
        state = frame_state(scene, action, t, frame=5)
        assert state.contacts == {}
        assert state.streams == []
        for obj in scene.objects:
            pose = state.poses[obj.name]
            rest = obj.pose
            assert (pose.x, pose.y, pose.sx, pose.sy) == pytest.approx((rest.x, rest.y, rest.sx, rest.sy))
            assert math.cos(pose.angle - obj.pose.angle) == pytest.approx(1.0)
    start, end = frame_state(scene, action, 0.0, 5), frame_state(scene, action, 1.0, 5)
    for hand in HAND_NAMES:
        assert start.hands[hand].x == pytest.approx(end.hands[hand].x)
        assert start.hands[hand].y == pytest.approx(end.hands[hand].y)


@pytest.mark.parametrize("motion", sorted(MOTIONS))
def test_the_leading_hand_touches_what_the_action_is_about_during_the_act(motion):
    scene, action = find_action(motion)
    involved = {action.target, *action.roles.values()}
    for t in (0.3, 0.5, 0.7):
        state = frame_state(scene, action, t, frame=0)
        assert state.contacts.get(action.side) in involved


def test_cut_moves_the_knife_back_and_forth_over_the_food_held_by_the_other_hand():
    scene, action = find_action("cut")
    knife = scene.object(action.roles["tool"])
    target = scene.object(action.target)
    along, near = [], []
    for t in ACT:
        state = frame_state(scene, action, t, 0)
        pose = state.poses[knife.name]
        along.append(pose.x * math.cos(pose.angle) + pose.y * math.sin(pose.angle))
        blade = pose.apply((0.15 * knife.look.w, 0))
        near.append(math.hypot(blade[0] - target.pose.x, blade[1] - target.pose.y) < max(target.look.w, target.look.h))
        assert state.contacts[action.side] == knife.name
        other = [h for h in HAND_NAMES if h != action.side][0]
        assert state.contacts[other] == target.name
    assert direction_changes(along) >= 3
    assert all(near)


def test_pick_lifts_the_object_towards_the_camera():
    scene, action = find_action("pick")
    base = scene.object(action.target).pose
    state = frame_state(scene, action, 0.6, 0)
    pose = state.poses[action.target]
    assert pose.sx > 1.1 * base.sx and pose.y > base.y + 10
    hand = state.hands[action.side]
    assert math.hypot(hand.x - pose.x, hand.y - pose.y) < 150
    assert action.target in state.lifted


def test_place_carries_the_object_onto_its_support():
    scene, action = find_action("place")
    support = scene.object(action.roles["support"])
    pose = frame_state(scene, action, 0.78, 0).poses[action.target]
    box = footprint(support.look, support.pose)
    assert box.x0 <= pose.x <= box.x1 and box.y0 <= pose.y <= box.y1


def test_open_pulls_a_drawer_towards_the_camera_and_close_pushes_it_back():
    scene, action = find_action("open", "drawer")
    base = scene.object(action.target).pose
    ys = [frame_state(scene, action, t, 0).poses[action.target].y for t in (0.2, 0.5, 0.75)]
    assert ys[0] == pytest.approx(base.y) and ys[0] < ys[1] < ys[2]
    scene, action = find_action("close", "drawer")
    ys = [frame_state(scene, action, t, 0).poses[action.target].y for t in (0.2, 0.5, 0.75)]
    assert ys[0] > ys[1] > ys[2] == pytest.approx(scene.object(action.target).pose.y)


def test_open_swings_a_fridge_door_about_its_hinge():
    scene, action = find_action("open", "fridge")
    obj = scene.object(action.target)
    hinge = obj.pose.apply((-obj.look.w / 2, 0))
    pose = frame_state(scene, action, 0.75, 0).poses[obj.name]
    assert pose.sx < 0.5
    assert pose.apply((-obj.look.w / 2, 0)) == pytest.approx(hinge)


def test_pour_tilts_the_bottle_spout_down_with_a_stream_into_the_target():
    scene, action = find_action("pour")
    bottle = scene.object(action.roles["tool"])
    target = scene.object(action.target)
    state = frame_state(scene, action, 0.5, 0)
    pose = state.poses[bottle.name]
    spout = pose.apply((0.5 * bottle.look.w, 0))
    assert spout[1] > pose.y  # past horizontal
    assert len(state.streams) == 1
    assert state.streams[0].end == pytest.approx((target.pose.x, target.pose.y))
    assert state.streams[0].start[1] < target.pose.y


def test_stir_circles_the_spoon_inside_the_pot():
    scene, action = find_action("stir")
    spoon = scene.object(action.roles["tool"])
    angles = []
    for t in ACT:
        pose = frame_state(scene, action, t, 0).poses[spoon.name]
        head = pose.apply((0.33 * spoon.look.w, 0))
        centre = frame_state(scene, action, t, 0).poses[action.target]
        angles.append(math.atan2(head[1] - centre.y, head[0] - centre.x))
    assert np.ptp(np.unwrap(angles)) > 2 * math.pi  # more than one full turn


def test_shake_oscillates_up_and_down():
    scene, action = find_action("shake")
    ys = [frame_state(scene, action, t, 0).poses[action.target].y for t in ACT]
    assert direction_changes(ys) >= 4


def test_wipe_sweeps_the_cloth_side_to_side_over_the_surface():
    scene, action = find_action("wipe")
    cloth = action.roles["tool"]
    xs = [frame_state(scene, action, t, 0).poses[cloth].x for t in ACT]
    assert direction_changes(xs) >= 3
    box = footprint(scene.object(action.target).look, scene.object(action.target).pose)
    assert all(box.x0 <= x <= box.x1 for x in xs)


def test_scrub_holds_the_item_over_the_sink_and_circles_the_sponge():
    scene, action = find_action("scrub")
    sink = scene.object(action.roles["support"])
    box = footprint(sink.look, sink.pose)
    state = frame_state(scene, action, 0.5, 0)
    item = state.poses[action.target]
    assert box.x0 <= item.x <= box.x1 and box.y0 <= item.y <= box.y1
    xs = [frame_state(scene, action, t, 0).poses[action.roles["tool"]].x for t in ACT]
    assert direction_changes(xs) >= 3


def test_peel_strokes_repeatedly_along_the_food():
    scene, action = find_action("peel")
    peeler = scene.object(action.roles["tool"])
    target = scene.object(action.target)
    along = np.array([math.cos(target.pose.angle), math.sin(target.pose.angle)])
    proj = []
    for t in ACT:
        pose = frame_state(scene, action, t, 0).poses[peeler.name]
        proj.append(float(np.dot(pose.apply((0.35 * peeler.look.w, 0)), along)))
    assert direction_changes(proj) >= 3


def test_tap_streams_start_with_turn_on_and_stop_with_turn_off():
    scene, action = find_action("tap_on")
    assert frame_state(scene, action, 0.25, 0).streams == []
    assert len(frame_state(scene, action, 0.6, 0).streams) == 1
    scene, action = find_action("tap_off")
    assert len(frame_state(scene, action, 0.25, 0).streams) == 1
    assert frame_state(scene, action, 0.6, 0).streams == []


def test_push_slides_the_object_sideways():
    scene, action = find_action("push")
    base = scene.object(action.target).pose
    pose = frame_state(scene, action, 0.77, 0).poses[action.target]
    assert abs(pose.x - base.x) > 60
    assert frame_state(scene, action, 0.77, 0).hands[action.side].grip < 0.5  # a flat hand pushes


def test_camera_moves_smoothly_and_deterministically():
    scene, _ = find_action("pick")
    cams = [camera_at(scene, f) for f in range(60)]
    assert cams[10] == camera_at(scene, 10)
    dx = np.array([c.dx for c in cams])
    assert np.ptp(dx) > 1.0 and np.abs(dx).max() < 40
    assert max(abs(c.roll) for c in cams) < 0.05
