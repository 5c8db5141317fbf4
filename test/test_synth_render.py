import numpy as np
import pytest

from actiseg_ros.data import taxonomy
from actiseg_ros.data.synth_motion import frame_state
from actiseg_ros.data.synth_render import SceneRenderer, hand_shape
from actiseg_ros.data.synth_motion import HandPose
from actiseg_ros.data.synth_scene import SceneConfig, sample_scene
from actiseg_ros.data.synth_sprites import SHAPES, draw_sprite, sample_look

SCENE = sample_scene(0, 77, SceneConfig())
ACTION = SCENE.actions[0]


@pytest.mark.parametrize("key", sorted(SHAPES))
def test_every_class_draws_a_solid_sprite_in_each_of_its_names(key):
    rng = np.random.default_rng(0)
    for name in taxonomy.object_class(key).names:
        look = sample_look(key, name, rng)
        sprite = draw_sprite(look, 0.5)
        assert sprite.rgb.shape[:2] == sprite.alpha.shape
        solid = sprite.alpha >= 0.5
        assert solid.mean() > 0.15, name  # not an empty or hairline sprite
        assert np.all(sprite.rgb <= 255.0 * sprite.alpha[..., None] + 1e-3)  # premultiplied
        assert np.array_equal(draw_sprite(look, 0.5).rgb, sprite.rgb)  # deterministic


def test_classes_differ_in_mean_colour_or_silhouette():
    rng = np.random.default_rng(1)
    signatures = {}
    for key in SHAPES:
        look = sample_look(key, taxonomy.object_class(key).name, rng)
        sprite = draw_sprite(look, 0.4)
        solid = sprite.alpha >= 0.5
        colour = (sprite.rgb[solid] / sprite.alpha[solid][:, None]).mean(0)
        signatures[key] = (colour, look.w / look.h, solid.mean())
    keys = sorted(signatures)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            ca, ra, fa = signatures[a]
            cb, rb, fb = signatures[b]
            differs = (np.abs(ca - cb).max() > 25 or abs(np.log(ra / rb)) > 0.25 or abs(fa - fb) > 0.12)
            assert differs, (a, b)


def test_sample_look_varies_within_a_class():
    rng = np.random.default_rng(2)
    looks = [sample_look("chopping-board", "chopping board", rng) for _ in range(12)]
    assert len({round(lk.w) for lk in looks}) > 6
    assert len({lk.colour for lk in looks}) == 12
    assert sample_look("knife", "cleaver", rng).shape == "cleaver"


def test_labels_are_alphabetical_ids_and_hands_always_show():
    renderer = SceneRenderer(SCENE, 214, 120)
    out = renderer.render(frame_state(SCENE, ACTION, 0.5, 30), 30)
    names = SCENE.object_names
    assert out.labels.dtype == np.uint8 and out.labels.shape == (120, 214)
    assert set(np.unique(out.labels)) <= set(range(len(names) + 1))
    for hand in taxonomy.HAND_NAMES:
        assert (out.labels == names.index(hand) + 1).sum() > 20
        x0, y0, x1, y1 = out.hand_boxes[hand]
        assert 0 <= x0 <= x1 < 214 and 0 <= y0 <= y1 < 120
    assert out.rgb.shape == (120, 214, 3) and out.rgb.dtype == np.uint8


def test_labels_only_mode_gives_the_same_labels_as_colour_mode():
    state = frame_state(SCENE, ACTION, 0.4, 12)
    full = SceneRenderer(SCENE, 160, 90).render(state, 12)
    fast = SceneRenderer(SCENE, 160, 90, labels_only=True).render(state, 12)
    assert fast.rgb is None
    assert np.array_equal(full.labels, fast.labels)
    assert full.object_boxes == fast.object_boxes and full.hand_boxes == fast.hand_boxes


@pytest.mark.parametrize("size", [(97, 61), (61, 97), (300, 300), (33, 17)])
def test_any_frame_size_renders_the_same_scene(size):
    width, height = size
    state = frame_state(SCENE, ACTION, 0.5, 3)
    out = SceneRenderer(SCENE, width, height).render(state, 3)
    assert out.rgb.shape == (height, width, 3) and out.labels.shape == (height, width)
    big = SceneRenderer(SCENE, 427, 240).render(state, 3)
    small_ids = set(np.unique(out.labels)) - {0}
    assert small_ids <= set(np.unique(big.labels))
    if min(size) >= 60:
        assert len(small_ids) >= len(set(np.unique(big.labels)) - {0}) - 2


def test_rendering_is_deterministic_and_frames_differ_over_time():
    state = frame_state(SCENE, ACTION, 0.5, 8)
    a = SceneRenderer(SCENE, 128, 72).render(state, 8).rgb
    b = SceneRenderer(SCENE, 128, 72).render(state, 8).rgb
    assert np.array_equal(a, b)
    c = SceneRenderer(SCENE, 128, 72).render(frame_state(SCENE, ACTION, 0.6, 9), 9).rgb
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 0.5


def test_background_is_textured_and_noisy():
    renderer = SceneRenderer(SCENE, 200, 120)
    rgb = renderer.render(frame_state(SCENE, ACTION, 0.0, 0), 0).rgb.astype(np.float32)
    patch = rgb[40:60, 60:100]
    assert patch.std() > 2.0  # no flat colour fields


def test_too_small_frames_are_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="too small"):
        SceneRenderer(SCENE, 4, 100)


def test_hand_fingers_point_away_from_the_elbow_and_fist_is_compact():
    open_hand = hand_shape("right hand", HandPose(400, 200, 0.0), (700, 640), 1.0)
    fist = hand_shape("right hand", HandPose(400, 200, 1.0), (700, 640), 1.0)
    tips = open_hand.creases[:, 1]
    assert np.all(tips[:, 1] < 200)  # fingers extend up, away from an elbow below
    reach = lambda s: np.linalg.norm(s.creases[:, 1] - s.creases[:, 0], axis=1).mean()  # noqa: E731
    assert reach(fist) < 0.5 * reach(open_hand)
    left = hand_shape("left hand", HandPose(400, 200, 0.0), (100, 640), 1.0)
    # The thumb sits on the inner side: right of the left hand, left of the right hand.
    assert left.fingers[4].mean(0)[0] > 400 - 10 and open_hand.fingers[4].mean(0)[0] < 400 + 10
