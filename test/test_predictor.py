"""Predictor: masks exactly aligned to the camera image, the same numbers as the torch model it was
exported from, prompt caching, and clear errors for bad input."""
import shutil

import cv2
import numpy as np
import pytest

from actiseg_ros.inference.engines.base import EngineInputError
from actiseg_ros.inference.engines.onnxruntime_engine import OrtTextEngine
from actiseg_ros.inference.model_card import ModelCardError, load_model_card
from actiseg_ros.inference.postprocess import active_objects, compose_labels, labels_for_active
from actiseg_ros.inference.predictor import Predictor, object_results
from actiseg_ros.inference.preprocess import (FramePreprocessor, area_split_row, letterbox_image, letterbox_labels,
                                              logits_to_camera, normalize)
from actiseg_ros.inference.text import PromptEncoder
from actiseg_ros.inference.tokenizer import PromptTokenizer
from exported_model import tiny_export

pytestmark = pytest.mark.training  # real torch models, exports or training steps

CAMERA_SIZES = [(640, 480), (1280, 720), (427, 240), (480, 640)]  # (W, H); the last is portrait
DEFAULT_INPUT = (192, 320)  # the shipped model's input size (H, W)
COFFEE_PROMPTS = ["cup used in the action of drink coffee", "spoon used in the action of stir coffee with spoon",
                  "saucer used in the action of pick up cup", "knife used in the action of cut onion"]


# --- alignment of model output to camera pixels (pure) ----------------------------------------------------

def signed_distance(h, w):
    """(H, W) float32: distance to a circle's edge in camera pixels, positive inside."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    return 0.25 * min(h, w) - np.hypot(x - 0.62 * w, y - 0.55 * h)


def round_trip(camera_map, input_hw, stride=4):
    """Camera-resolution map -> letterbox -> model-output grid (area average, as a stride-4 network sees it)
    -> logits_to_camera."""
    model_map, box = letterbox_image(camera_map, input_hw)
    out_hw = (input_hw[0] // stride, input_hw[1] // stride)
    logits = cv2.resize(model_map.astype(np.float32), (out_hw[1], out_hw[0]), interpolation=cv2.INTER_AREA)
    return logits_to_camera(logits[None], box)[0]


def iou_and_shift(a, b):
    ya, xa = np.nonzero(a)
    yb, xb = np.nonzero(b)
    shift = max(abs(xa.mean() - xb.mean()), abs(ya.mean() - yb.mean()))
    return (a & b).sum() / (a | b).sum(), shift


@pytest.mark.parametrize("width, height", CAMERA_SIZES)
def test_masks_come_back_aligned_to_the_camera_image(width, height):
    truth = signed_distance(height, width)
    back = round_trip(truth, DEFAULT_INPUT)
    assert back.shape == (height, width)
    iou, shift = iou_and_shift(back > 0, truth > 0)
    assert iou > 0.995 and shift < 0.1, (iou, shift)  # no offset, no stretch: only sub-pixel edge error


@pytest.mark.parametrize("width, height", CAMERA_SIZES)
def test_binary_mask_round_trip(width, height):
    mask = np.zeros((height, width), np.uint8)
    cv2.rectangle(mask, (int(0.1 * width), int(0.15 * height)), (int(0.45 * width), int(0.6 * height)), 1, -1)
    cv2.circle(mask, (int(0.7 * width), int(0.65 * height)), int(0.2 * min(height, width)), 1, -1)
    model_mask = letterbox_labels(mask, DEFAULT_INPUT).astype(np.float32)
    box = letterbox_image(mask, DEFAULT_INPUT)[1]
    fraction = cv2.resize(model_mask, (DEFAULT_INPUT[1] // 4, DEFAULT_INPUT[0] // 4), interpolation=cv2.INTER_AREA)
    back = logits_to_camera(((fraction - 0.5) * 20)[None], box)[0] > 0
    iou, shift = iou_and_shift(back, mask > 0)
    # Corners lost at stride 4 cost a little IoU; the shape must not move.
    assert iou > 0.96 and shift < 2.0, (iou, shift)


def test_alignment_when_content_is_not_a_multiple_of_the_stride():
    for width, height in CAMERA_SIZES:
        truth = signed_distance(height, width)
        iou, shift = iou_and_shift(round_trip(truth, (64, 96)) > 0, truth > 0)
        assert shift < 0.5, (width, height, shift)


# --- label composition and per-object results (pure) ---------------------------------------------------

def argmax_labels(logits, active, threshold):
    """The obvious reference: argmax over active objects' logits, kept where above the threshold."""
    scores = np.where(active[:, None, None], logits, -np.inf)
    best = scores.argmax(axis=0)
    best_score = np.take_along_axis(scores, best[None], axis=0)[0]
    return np.where(best_score > np.float32(np.log(threshold / (1 - threshold))), best + 1, 0).astype(np.uint8)


def test_labels_for_active_equal_the_argmax_reference():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 37, 53)).astype(np.float32)
    logits[2, :5] = logits[4, :5]  # exact ties: the lower index wins in both
    for probability in (0.5, 0.7, 0.3):  # values on and next to the threshold decide the same way
        at = np.float32(np.log(probability / (1 - probability)))
        logits[:, 6 + int(10 * probability), :3] = [np.nextafter(at, np.float32(-1e9)), at,
                                                    np.nextafter(at, np.float32(1e9))]
    for active in (np.array([1, 0, 1, 1, 0, 1], bool), np.ones(6, bool), np.zeros(6, bool), np.eye(6, dtype=bool)[3]):
        index = np.flatnonzero(active)
        for threshold in (0.5, 0.7, 0.3):
            expected = argmax_labels(logits, active, threshold)
            got = labels_for_active(logits[index], index, logits.shape[1:], threshold)
            np.testing.assert_array_equal(got, expected)
            np.testing.assert_array_equal(compose_labels(logits, active, threshold), expected)
            assert got.dtype == np.uint8


def test_labels_from_the_grid_equal_labels_from_camera_size_logits():
    """Upsampling each active map only inside its support box gives the very labels of the full warp:
    smooth and noisy maps, objects at the borders, thresholds on both sides, several camera sizes."""
    import cv2

    from actiseg_ros.inference.postprocess import compose_labels_from_grid, label_regions_from_grid, labels_from_grid
    from actiseg_ros.inference.preprocess import letterbox_geometry

    rng = np.random.default_rng(1)
    for camera_hw in ((480, 640), (720, 1280), (240, 427), (481, 853), (100, 100)):
        box = letterbox_geometry(camera_hw, (192, 320))
        for trial in range(6):
            noise = rng.normal(0, 8, (48, 80, 5)).astype(np.float32)
            grid = np.ascontiguousarray(cv2.GaussianBlur(noise, (0, 0), 1 + trial % 3).transpose(2, 0, 1)) - 4
            grid[trial % 5, :, :2] = 9.0  # an object touching the left border
            for active in (np.array([1, 0, 1, 1, 1], bool), np.zeros(5, bool)):
                index = np.flatnonzero(active)
                for threshold in (0.5, 0.8):
                    expected = labels_for_active(logits_to_camera(grid[index], box), index, camera_hw, threshold)
                    np.testing.assert_array_equal(labels_from_grid(grid[index], index, box, threshold), expected)
                    np.testing.assert_array_equal(compose_labels_from_grid(grid, active, box, threshold), expected)
                    # The regions bound every object's pixels, so object results counted inside them are the
                    # whole-image ones.
                    labels, regions = label_regions_from_grid(grid[index], index, box, threshold)
                    for i in index:
                        outside = labels == i + 1
                        if i in regions:
                            x0, y0, x1, y1 = regions[i]
                            outside[y0:y1, x0:x1] = False
                        assert not outside.any()
                    scores = np.linspace(0.2, 0.9, 5)
                    assert (object_results(labels, list("abcde"), scores, active, regions)
                            == object_results(labels, list("abcde"), scores, active))


def test_frame_preprocessor_gives_the_letterbox_pixels():
    """The streaming pre-processing (area resize in two bands on two threads, reused input tensor) equals
    normalize(letterbox_image(...)) bit for bit: split ratios (2.5, 4, 5, 6), unsplittable ones, upscaling,
    a frame already at the input size, a row-padded (non-contiguous) frame, and size changes between calls."""
    rng = np.random.default_rng(4)
    preprocess = FramePreprocessor(DEFAULT_INPUT)
    try:
        sizes = [(480, 640), (960, 1280), (720, 1280), (1080, 1920), (480, 848), (481, 641), (240, 320), (100, 100),
                 (192, 320), (640, 480), (480, 640)]
        for height, width in sizes:
            padded = rng.integers(0, 256, (height, width + 7, 3), dtype=np.uint8)
            for rgb in (padded[:, :width].copy(), padded[:, :width]):
                images, box = preprocess(rgb)
                expected, expected_box = letterbox_image(rgb, DEFAULT_INPUT)
                assert box == expected_box
                np.testing.assert_array_equal(images, normalize(expected[None]))
    finally:
        preprocess.close()
    assert area_split_row(480, 192) == 96 and area_split_row(720, 180) == 90
    assert area_split_row(480, 181) is None and area_split_row(100, 192) is None and area_split_row(192, 192) is None


def test_object_results_area_and_bbox():
    labels = np.zeros((10, 20), np.uint8)
    labels[2:5, 3:9] = 1
    labels[7, 15] = 3
    results = object_results(labels, ["a", "b", "c"], np.array([0.9, 0.1, 0.8]), np.array([True, False, True]))
    assert [(r.area, r.bbox) for r in results] == [(18, (3, 2, 8, 4)), (0, None), (1, (15, 7, 15, 7))]
    # Counted inside regions, boxes come back in image coordinates; an active object without a region has none.
    regions = {0: (2, 1, 10, 6), 2: (14, 6, 20, 10)}
    inside = object_results(labels, ["a", "b", "c"], np.ones(3), np.ones(3, bool), regions)
    assert [(r.area, r.bbox) for r in inside] == [(18, (3, 2, 8, 4)), (0, None), (1, (15, 7, 15, 7))]
    assert results[1].prompt == "b" and not results[1].active and results[0].score == pytest.approx(0.9)


# --- the real predictor on an exported model --------------------------------------------------------------

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return tiny_export(tmp_path_factory)


@pytest.fixture(scope="module")
def predictor(exported):
    with Predictor(exported / "model", backend="ort-cpu") as loaded:
        yield loaded


def test_predictor_matches_the_torch_model_on_coffee(exported, predictor):
    torch = pytest.importorskip("torch")
    skimage_data = pytest.importorskip("skimage.data")
    from actiseg_ros.training.checkpoint import load_weights
    from actiseg_ros.training.export import PARITY_ATOL
    from actiseg_ros.training.modeling.text_encoder import load_tokenizer, tokenize

    rgb = skimage_data.coffee()
    predictor.set_prompts(COFFEE_PROMPTS)
    mask_logits, positive_logits, box, _ = predictor.infer(rgb)

    model, _config, _info = load_weights(exported / "model.pt")
    letterboxed, _ = letterbox_image(rgb, predictor.card.input_hw)
    images = torch.from_numpy(letterboxed).permute(2, 0, 1)[None].float().sub(127.0).div(128.0)
    ids, mask = tokenize(load_tokenizer(), COFFEE_PROMPTS)
    with torch.no_grad():
        tokens = model.text_encoder(ids, mask)
        ref = model.segmenter(images, tokens[None], mask[None].float())
    ref_masks, ref_positive = ref["mask_logits"][0].numpy(), ref["positive_logits"][0].numpy()
    assert np.abs(mask_logits - ref_masks).max() <= PARITY_ATOL
    assert np.abs(positive_logits - ref_positive).max() <= PARITY_ATOL
    # The card's recorded ONNX-vs-torch parity holds for the runtime path too.
    assert predictor.card.raw["parity"]["mask_logit_max_abs_diff"] <= PARITY_ATOL

    prediction = predictor.predict(rgb, return_logits=True)
    expected_active = active_objects(ref_positive, predictor.positive_gate)
    np.testing.assert_array_equal(prediction.active, expected_active)
    expected_labels = compose_labels(logits_to_camera(ref_masks, box), expected_active, predictor.mask_threshold)
    assert (prediction.labels == expected_labels).mean() > 0.999


@pytest.mark.parametrize("width, height", CAMERA_SIZES + [(333, 111)])
def test_prediction_is_at_camera_resolution(exported, width, height):
    with Predictor(exported / "model", backend="ort-cpu", positive_gate=0.0) as everything_active:
        everything_active.set_prompts(COFFEE_PROMPTS[:3])
        rng = np.random.default_rng(width)
        frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        prediction = everything_active.predict(frame, return_logits=True)
    assert prediction.labels.shape == (height, width) and prediction.labels.dtype == np.uint8
    assert prediction.mask_logits.shape == (3, height, width)
    assert prediction.active.all() and prediction.scores.shape == (3,)
    np.testing.assert_array_equal(prediction.labels, compose_labels(prediction.mask_logits, prediction.active, 0.5))
    for result in prediction.objects:
        pixels = prediction.labels == result.index + 1
        assert result.area == pixels.sum()
        if result.area:
            ys, xs = np.nonzero(pixels)
            assert result.bbox == (xs.min(), ys.min(), xs.max(), ys.max())
    assert set(prediction.timings_ms) == {"preprocess", "segmenter", "postprocess"}


def test_bad_calls_are_refused(predictor, exported):
    with Predictor(exported / "model", backend="ort-cpu") as fresh:
        with pytest.raises(RuntimeError, match="call set_prompts"):
            fresh.predict(np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="list of strings"):
        predictor.set_prompts("cup used in the action of drink coffee")
    with pytest.raises(ValueError, match="list of strings"):
        predictor.set_prompts(None)
    with pytest.raises(ValueError, match="list of strings"):
        predictor.set_prompts(["cup", 7])
    with pytest.raises(ValueError, match="between 1 and 255 prompts are supported, got 0"):
        predictor.set_prompts([])
    predictor.set_prompts(COFFEE_PROMPTS[:1])
    with pytest.raises(EngineInputError, match=r"\(H, W, 3\) uint8 RGB image, got \(48, 64\) uint8"):
        predictor.predict(np.zeros((48, 64), np.uint8))
    with pytest.raises(EngineInputError, match="got \\(48, 64, 3\\) float32"):
        predictor.predict(np.zeros((48, 64, 3), np.float32))


def test_broken_model_folders_fail_at_load(exported, tmp_path):
    damaged = shutil.copytree(exported / "model", tmp_path / "damaged")
    data = bytearray((damaged / "segmenter.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (damaged / "segmenter.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelCardError, match="segmenter.onnx: sha256 mismatch"):
        Predictor(damaged, backend="ort-cpu")
    (damaged / "tokenizer.json").unlink()
    with pytest.raises(ModelCardError, match="tokenizer tokenizer.json named in model_card.json does not exist"):
        Predictor(damaged, backend="ort-cpu", check_hashes=False)


def test_prompt_cache_is_lru_and_returns_the_same_features(exported):
    card = load_model_card(exported / "model", check_hashes=False)
    tokenizer = PromptTokenizer(card.tokenizer.path, card.max_tokens)
    engine = OrtTextEngine(card.text_encoder.path, card.max_tokens, card.text_width)
    encoder = PromptEncoder(tokenizer, engine, cache_size=2)
    a, b, c = COFFEE_PROMPTS[:3]
    first_tokens, first_mask = encoder.encode([a, b])
    assert (encoder.hits, encoder.misses) == (0, 2)
    again_tokens, again_mask = encoder.encode([b, a, a])
    assert (encoder.hits, encoder.misses) == (3, 2)  # all from the cache
    np.testing.assert_array_equal(again_tokens[1], first_tokens[0])
    np.testing.assert_array_equal(again_mask[0], first_mask[1])
    encoder.encode([c])  # evicts the least recently used: b (a was used after b)
    assert len(encoder) == 2
    encoder.encode([a])
    assert (encoder.hits, encoder.misses) == (4, 3)
    encoder.encode([b])
    assert encoder.misses == 4
    fresh_tokens, _ = PromptEncoder(tokenizer, engine, cache_size=0).encode([a])
    np.testing.assert_allclose(fresh_tokens[0], first_tokens[0], atol=1e-6)


def test_new_prompts_are_encoded_in_engine_sized_chunks(exported):
    card = load_model_card(exported / "model", check_hashes=False)
    engine = OrtTextEngine(card.text_encoder.path, card.max_tokens, card.text_width)
    engine.max_prompts = 2  # as a TensorRT profile would cap it; run() refuses bigger batches
    encoder = PromptEncoder(PromptTokenizer(card.tokenizer.path, card.max_tokens), engine, cache_size=8)
    tokens, mask = encoder.encode(COFFEE_PROMPTS + COFFEE_PROMPTS[:1])
    assert tokens.shape == (5, card.max_tokens, card.text_width) and mask.shape == (5, card.max_tokens)
    assert encoder.misses == 4
    np.testing.assert_array_equal(tokens[4], tokens[0])
