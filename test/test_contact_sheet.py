import numpy as np
import pytest

from actiseg_ros.data import actionvos, synth
from actiseg_ros.data.contact_sheet import contact_sheet, overlay, save_png

pytestmark = pytest.mark.slow  # full synthetic generations or command-line subprocesses


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("sheet")
    synth.write_dataset(synth.plan_dataset(synth.PRESETS["tiny"], seed=0), root)
    return root


def test_overlay_colours_positives_and_dims_negatives():
    rgb = np.full((20, 20, 3), 200, np.uint8)
    labels = np.zeros((20, 20), np.uint8)
    labels[2:8, 2:8] = 1
    labels[12:18, 12:18] = 2
    out = overlay(rgb, labels, positives={1}, negatives={2})
    assert out.shape == rgb.shape
    assert not np.array_equal(out[4, 4], rgb[4, 4])  # tinted
    assert out[15, 15].mean() < 150  # dimmed
    assert np.array_equal(out[10, 0], rgb[10, 0])  # background untouched


def test_contact_sheet_is_a_grid_of_scenes_by_narrations(tiny_root, tmp_path):
    sheet = contact_sheet(tiny_root, "train", rows=3, columns=4, tile_width=100)
    segments = actionvos.read_split(tiny_root, "train").segments
    first = segments[0]
    frame = actionvos.read_image(actionvos.image_path(tiny_root, "train", first.name, first.sparse_frames[0]))
    tile_h = int(round(frame.shape[0] * 100 / frame.shape[1])) + 2
    assert sheet.shape == (3 * tile_h, 4 * 102, 3)
    path = tmp_path / "sheet.png"
    save_png(path, sheet)
    assert path.stat().st_size > 1000


def test_contact_sheet_names_an_empty_split(tmp_path):
    actionvos.write_json(actionvos.image_set_path(tmp_path, "val"), [])
    with pytest.raises(ValueError, match="no segments"):
        contact_sheet(tmp_path, "val")
