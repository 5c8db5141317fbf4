"""The overlay picture: active objects tinted in their colour, the rest untouched."""
import cv2
import numpy as np

from actiseg_ros.ros.overlay import PALETTE_BGR, draw_overlay, label_colours, object_contours, tint_labels
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



def scattered_labels(rng, shape, count):
    """(H, W) uint8 labels 0..count in blobs of every size, many touching the image border."""
    noise = cv2.GaussianBlur(rng.normal(0, 1, shape + (count + 1,)).astype(np.float32), (0, 0), 2.5)
    noise = noise.reshape(shape + (count + 1,))  # OpenCV drops a single channel's axis
    return np.argmax(noise, axis=2).astype(np.uint8)  # 0 wins about a (count + 1)-th of the pixels


def test_tint_and_contours_equal_their_whole_image_versions():
    """The fast paths (tint inside the labelled box by table look-up; contours inside each object's bbox) give
    the pixels and contours of the plain whole-image computations, for scattered objects at the borders."""
    rng = np.random.default_rng(5)
    for shape, count in (((48, 64), 3), ((37, 53), 1), ((120, 160), 6), ((30, 40), 0)):
        labels = scattered_labels(rng, shape, count)
        labels[: shape[0] // 3] = 0  # a box that does not start at the origin
        lut = label_colours(max(count, 1))
        image = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
        out = image.copy()
        tint_labels(out, labels, lut, 0.4)
        expected = np.where(labels[..., None] > 0, cv2.addWeighted(image, 0.6, lut[labels], 0.4, 0.0), image)
        np.testing.assert_array_equal(out, expected)
        for label in range(1, count + 1):
            ys, xs = np.nonzero(labels == label)
            if not len(xs):
                continue
            bbox = (xs.min(), ys.min(), xs.max(), ys.max())
            whole = cv2.findContours(cv2.compare(labels, label, cv2.CMP_EQ), cv2.RETR_EXTERNAL,
                                     cv2.CHAIN_APPROX_SIMPLE)[0]
            found = object_contours(labels, label, bbox)
            assert sorted(c.tobytes() for c in found) == sorted(c.tobytes() for c in whole)
