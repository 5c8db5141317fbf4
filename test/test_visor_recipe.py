"""The GPU recipe's parts, on the CPU: mixed precision (a real bf16 autocast training step), the frame cache
(built on first use, read afterwards, identical samples without jitter) and loader threads (same batches)."""
import csv

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training tests need torch (pip install 'actiseg_ros[train]')")

from actiseg_ros.training.config import configs_dir, load_config  # noqa: E402
from actiseg_ros.training.data import SegmentClips  # noqa: E402
from actiseg_ros.training.frame_cache import FrameCache  # noqa: E402
from actiseg_ros.training.train import TrainSetupError, train  # noqa: E402

pytestmark = pytest.mark.training  # real torch models and training steps


def tiny_config(data, **overrides):
    return load_config(configs_dir() / "tiny.yaml", dict({"data_root": str(data), "threads": 1}, **overrides))


def log_rows(out):
    with open(out / "train_log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_visor_recipe_loads_with_its_gpu_settings():
    config = load_config(configs_dir() / "visor.yaml")
    assert (config.precision, config.loader_workers, config.frames_per_clip) == ("bf16", 8, 5)
    assert config.frame_cache and config.model.input_hw == (288, 512) and config.model.backbone_trainable
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        load_config(configs_dir() / "visor.yaml", {"precision": "half"})


def test_a_bf16_autocast_step_trains_and_differs_from_fp32(tiny_data, tmp_path):
    """One real step each: bf16 autocast runs forward and loss in bfloat16 (the loss differs from fp32's by
    bf16 rounding, not more) and writes finite weights; fp16 is refused on a CPU."""
    losses = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        train(tiny_config(tiny_data, max_steps=1, precision=precision), out, log=lambda *_: None)
        losses[precision] = float(log_rows(out)[0]["total"])
        state = torch.load(out / "model.pt", map_location="cpu", weights_only=False)["model"]
        assert all(torch.isfinite(v.float()).all() for v in state.values())
    assert losses["bf16"] != losses["fp32"]
    assert abs(losses["bf16"] - losses["fp32"]) < 0.05 * abs(losses["fp32"])
    with pytest.raises(TrainSetupError, match="fp16 needs a CUDA device"):
        train(tiny_config(tiny_data, max_steps=1, precision="fp16"), tmp_path / "fp16", log=lambda *_: None)


def test_loader_threads_give_the_same_training(tiny_data, tmp_path):
    """Two loader threads, one step ahead: the same batches, so the same losses step by step."""
    runs = {}
    for workers in (0, 2):
        out = tmp_path / ("w%d" % workers)
        train(tiny_config(tiny_data, max_steps=4, loader_workers=workers), out, log=lambda *_: None)
        runs[workers] = [(r["step"], r["total"]) for r in log_rows(out)]
    assert len(runs[0]) == 4 and runs[2] == runs[0]


def test_a_step_that_raises_leaves_no_loader_threads_and_the_log_complete(tiny_data, tmp_path, monkeypatch):
    """A failing step (here the third optimizer update) ends the loader threads and closes the log with the
    rows written so far, so a long-lived process (a grid's worker) goes on without leftovers."""
    import threading

    import actiseg_ros.training.train as train_module

    real_update, calls = train_module.update, []

    def failing_update(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("step failed on purpose")
        return real_update(*args, **kwargs)

    monkeypatch.setattr(train_module, "update", failing_update)
    before = {t.ident for t in threading.enumerate()}  # (tqdm's own monitor thread is a daemon; not counted)
    out = tmp_path / "failing"
    # the traceback stays alive here, as in a caller that keeps or reports it: nothing may rely on the
    # garbage collector to end the threads
    with pytest.raises(RuntimeError, match="step failed on purpose") as failure:
        train(tiny_config(tiny_data, max_steps=4, loader_workers=2, log_every=1), out, log=lambda *_: None)
    assert failure.traceback
    leftover = [t.name for t in threading.enumerate() if t.ident not in before and not t.daemon]
    assert leftover == []
    assert [r["step"] for r in log_rows(out)] == ["1", "2"]


def test_frame_cache_is_built_on_first_use_and_then_read(tiny_data, tmp_path):
    cache_dir = tmp_path / "frames"
    plain = SegmentClips(tiny_data, "train", (64, 96), frames_per_clip=2)
    cached = SegmentClips(tiny_data, "train", (64, 96), frames_per_clip=2, frame_cache=str(cache_dir))
    for index in range(3):
        a, b = plain[index], cached[index]
        assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)
    files = sorted(cache_dir.rglob("*.npy"))
    assert len(files) == cached.frame_cache.misses == 6 and cached.frame_cache.hits == 0
    again = SegmentClips(tiny_data, "train", (64, 96), frames_per_clip=2, frame_cache=str(cache_dir))
    first = again[0]
    assert again.frame_cache.hits == 2 and again.frame_cache.misses == 0
    assert torch.equal(first.images, plain[0].images)
    # What is read is the cache's content: alter one cached frame and the sample shows it.
    path = again.frame_cache.path(first.image_files[0])
    data = np.load(path)
    data[1:] = 255 - data[1:]
    np.save(path, data)
    assert not torch.equal(again[0].images[0], first.images[0])
    assert torch.equal(again[0].images[1], first.images[1])


def test_frame_cache_with_jitter_stays_close_to_the_uncached_sample(tiny_data, tmp_path):
    """Jitter goes on after the cached resize: the same draws, differing only by interpolation rounding."""
    plain = SegmentClips(tiny_data, "train", (64, 96), frames_per_clip=2, jitter=0.2)
    cached = SegmentClips(tiny_data, "train", (64, 96), frames_per_clip=2, jitter=0.2, frame_cache=str(tmp_path))
    a, b = plain[1], cached[1]
    assert torch.equal(a.targets, b.targets)
    assert 0 < float((a.images - b.images).abs().mean()) < 0.05


def test_frame_cache_key_follows_the_file(tmp_path):
    image = tmp_path / "frame.jpg"
    image.write_bytes(b"one")
    cache = FrameCache(tmp_path / "c", (64, 96))
    before = cache.path(image)
    image.write_bytes(b"other bytes")
    assert cache.path(image) != before and before.parent.parent.name == "64x96-v1"


def test_visor_segments_shorter_than_a_clip_repeat_their_frames(tmp_path):
    """VISOR actions have 2 or more annotated frames; a clip of 5 repeats a short segment's frames in order,
    so clips of different segments collate into one batch."""
    from actiseg_ros.data.import_visor import import_visor
    from actiseg_ros.training.data import collate_clips
    from test_import_visor import fixture_spec
    from visor_fixtures import write_visor

    visor, annotations = write_visor(tmp_path / "in", *fixture_spec())
    import_visor(visor, annotations, tmp_path / "data", ("train",), jobs=1, progress=False)
    clips = SegmentClips(tmp_path / "data", "train", (64, 96), frames_per_clip=5)
    samples = [clips[i] for i in range(len(clips))]
    assert [len(s.image_files) for s in samples] == [5, 5, 5, 5]
    assert samples[0].frames.tolist() == [0, 0, 0, 1, 1]  # 2 frames
    assert samples[1].frames.tolist() == [0, 0, 1, 1, 2]  # 3 frames
    batch = collate_clips(samples)
    assert tuple(batch["images"].shape) == (4, 5, 3, 64, 96)
    three = SegmentClips(tmp_path / "data", "train", (64, 96), frames_per_clip=2)
    assert three[1].frames.tolist() == sorted(three[1].frames.tolist()) and len(three[1].frames) == 2
