"""The frozen-backbone feature cache (training/feature_cache.py): real training steps on the tiny preset give the
same losses and weights with the cache (cold and warm, backbone features and prompt bank) as without it, and
the cache's folder changes with the backbone weights and the input size."""
import csv

import pytest

torch = pytest.importorskip("torch", reason="training tests need torch (pip install 'actiseg_ros[train]')")

from actiseg_ros.training.config import configs_dir, load_config  # noqa: E402
from actiseg_ros.training.data import SegmentClips, collate_clips  # noqa: E402
from actiseg_ros.training.feature_cache import FeatureCache, module_digest  # noqa: E402
from actiseg_ros.training.modeling.image_encoder import ImageEncoder  # noqa: E402
from actiseg_ros.training.train import train  # noqa: E402

pytestmark = pytest.mark.training  # real torch models and training steps

TINY = configs_dir() / "tiny.yaml"
FROZEN = {"model.backbone_trainable": False, "jitter": 0.0, "threads": 1, "log_every": 1, "checkpoint_every": 100}


def tiny_config(tiny_data, **overrides):
    return load_config(TINY, dict(FROZEN, data_root=str(tiny_data), **overrides))


def log_rows(run_dir):
    with open(run_dir / "train_log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def weights(path):
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


def test_training_with_the_cache_gives_the_same_losses_and_weights(tiny_data, tmp_path):
    # 8 steps: both epochs of the tiny recipe, so PMHM's robust loss (after its 1-epoch warm-up) runs too.
    plain = train(tiny_config(tiny_data, max_steps=8), tmp_path / "plain", log=lambda *a: None)
    cache_dir = tmp_path / "cache"
    cold = train(tiny_config(tiny_data, max_steps=8, feature_cache=str(cache_dir)), tmp_path / "cold",
                 log=lambda *a: None)
    stored = sorted(cache_dir.rglob("*.npz"))
    assert stored, "the first cached run must fill the cache"
    prompt_files = sorted(cache_dir.glob("prompts-*.pt"))
    assert len(prompt_files) == 1, "the prompt bank of the training data is cached as one file"
    stored += prompt_files
    stamps = {p: p.stat().st_mtime_ns for p in stored}
    warm = train(tiny_config(tiny_data, max_steps=8, feature_cache=str(cache_dir)), tmp_path / "warm",
                 log=lambda *a: None)
    assert {p: p.stat().st_mtime_ns for p in stored} == stamps, "the warm run rewrote cache files"
    assert len(list(cache_dir.rglob("*.npz"))) == len(stored) - 1
    reference = log_rows(tmp_path / "plain")
    assert len(reference) == 8 and float(reference[0]["total"]) > 0
    assert log_rows(tmp_path / "cold") == reference
    assert log_rows(tmp_path / "warm") == reference
    expected = weights(plain)
    for run in (cold, warm):
        got = weights(run)
        assert all(torch.equal(got[k], expected[k]) for k in expected)
    assert not list(cache_dir.rglob("*.tmp*")), "no temporary file may be left behind"


def test_cached_features_are_the_encoders_and_the_folder_follows_weights_and_size(tiny_data, tmp_path):
    config = tiny_config(tiny_data)
    clips = SegmentClips(tiny_data, "train", config.model.input_hw, frames_per_clip=2)
    batch = collate_clips([clips[0], clips[1]])
    images = batch["images"].flatten(0, 1)
    torch.manual_seed(0)
    encoder = ImageEncoder(config.model.backbone).eval()
    cache = FeatureCache(tmp_path, encoder, config.model.input_hw, config.model.backbone)
    first = cache.features(batch["image_files"], images)
    assert (cache.hits, cache.misses) == (0, 4)
    again = cache.features(batch["image_files"][::-1], images.flip(0))
    assert (cache.hits, cache.misses) == (4, 4)
    with torch.no_grad():
        direct = encoder(images)
    for level, got, reread in zip(direct, first, again):
        assert torch.equal(got, level) and torch.equal(reread, level.flip(0))

    # Other batch-norm statistics (another backbone state) -> another folder, recomputed features.
    other = ImageEncoder(config.model.backbone).eval()
    with torch.no_grad():
        other.stem[1].running_mean.add_(0.5)
    assert module_digest(other) != module_digest(encoder)
    changed = FeatureCache(tmp_path, other, config.model.input_hw, config.model.backbone)
    assert changed.folder != cache.folder
    features = changed.features(batch["image_files"], images)
    assert changed.misses == 4 and not torch.equal(features[0], first[0])
    # Another input size -> another folder; images of the wrong size are refused.
    resized = FeatureCache(tmp_path, encoder, (96, 128), config.model.backbone)
    assert resized.folder != cache.folder
    with pytest.raises(ValueError, match="inputs"):
        resized.features(batch["image_files"], images)
    # The key is the image file's content: a rewritten frame is a new entry.
    copy = tmp_path / "frame.jpg"
    copy.write_bytes(open(batch["image_files"][0], "rb").read())
    assert cache.path(copy) == cache.path(batch["image_files"][0])
    copy.write_bytes(open(batch["image_files"][1], "rb").read())
    assert FeatureCache(tmp_path, encoder, config.model.input_hw, config.model.backbone).path(copy) \
        == cache.path(batch["image_files"][1])


def test_the_cache_refuses_jitter_and_a_trainable_backbone(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="jitter"):
        tiny_config(tiny_data, jitter=0.2, feature_cache=str(tmp_path))
    with pytest.raises(ValueError, match="backbone_trainable"):
        tiny_config(tiny_data, **{"model.backbone_trainable": True, "feature_cache": str(tmp_path)})


def test_infer_with_the_cache_writes_the_same_predictions(tiny_data, tmp_path):
    from conftest import run_actiseg

    model = train(tiny_config(tiny_data, max_steps=2), tmp_path / "run", log=lambda *a: None)
    cache = tmp_path / "cache"
    outputs = {}
    for name, extra in (("plain", []), ("cold", ["--feature-cache", str(cache)]),
                        ("warm", ["--feature-cache", str(cache)])):
        result = run_actiseg(["infer", "--data", str(tiny_data), "--split", "val_human", "--model", str(model),
                              "--threads", "1", "--out", str(tmp_path / name)] + extra)
        assert result.returncode == 0, result.stderr[-2000:]
        outputs[name] = {p.relative_to(tmp_path / name): p.read_bytes() for p in (tmp_path / name).rglob("*.png")}
        if name == "cold":
            stamps = {p: p.stat().st_mtime_ns for p in cache.rglob("*.npz")}
    assert outputs["plain"] and outputs["cold"] == outputs["plain"] and outputs["warm"] == outputs["plain"]
    frames = len(list((tiny_data / "JPEGImages_Sparse" / "val").rglob("*.jpg")))
    assert 0 < len(stamps) <= frames  # val_human's frames, computed once
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.npz")} == stamps  # the warm run only read them

    trainable = train(tiny_config(tiny_data, max_steps=1, **{"model.backbone_trainable": True}),
                      tmp_path / "trainable", log=lambda *a: None)
    refused = run_actiseg(["infer", "--data", str(tiny_data), "--split", "val_human", "--model", str(trainable),
                           "--out", str(tmp_path / "x"), "--feature-cache", str(cache)])
    assert refused.returncode != 0 and "frozen backbone" in refused.stderr
