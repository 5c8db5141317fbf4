"""The overlay picture: active objects tinted in their colour, the rest untouched."""
import numpy as np

from actiseg_ros.ros.overlay import PALETTE_BGR, draw_overlay, label_colours
from actiseg_ros.ros.pipeline import ObjectOutput


def test_active_object_is_tinted_and_background_kept():
    rgb = np.full((60, 80, 3), 100, np.uint8)
    labels = np.zeros((60, 80), np.uint8)
    labels[30:50, 40:70] = 1
    objects = [ObjectOutput(id=1, name="cup", prompt="", score=0.9, raw_score=0.9, active=True, bbox=(40, 30, 69, 49),
                            area=600),
               ObjectOutput(id=2, name="plate", prompt="", score=0.1, raw_score=0.1, active=False, bbox=None, area=0)]
    out = draw_overlay(rgb, labels, objects, "", alpha=0.5)
    assert out.shape == (60, 80, 3) and out.dtype == np.uint8
    inside = out[40, 55].astype(int)
    expected = (np.array([100, 100, 100]) * 0.5 + PALETTE_BGR[0] * 0.5).round().astype(int)
    assert np.abs(inside - expected).max() <= 1
    assert (out[5:20, 5:30] == 100).all()  # away from masks and text: the camera image
    titled = draw_overlay(rgb, labels, objects, "pick up cup", alpha=0.5)
    assert (titled[:20] != out[:20]).any()


def test_label_colours_cycle_the_palette():
    lut = label_colours(len(PALETTE_BGR) + 2)
    assert (lut[0] == 0).all()
    assert (lut[1] == PALETTE_BGR[0]).all() and (lut[len(PALETTE_BGR) + 1] == PALETTE_BGR[0]).all()
