"""Several cameras, one engine: the per-camera newest-frame slots, the batched Predictor and pipeline paths
(equal to the single-frame ones), and a real two-camera run: perception_node with cameras [head, wrist] fed by
two replay_node processes, each camera's outputs on its own topics with its own stamps and frame ids, and
frames of both cameras run as one batch."""
import threading
import time

import numpy as np
import pytest

from exported_model import tiny_export
from ros_harness import Probe, perception_node, read_manifest, replay_node

from actiseg_ros.data.synth import SceneStream
from actiseg_ros.inference.predictor import Predictor
from actiseg_ros.ros import names
from actiseg_ros.ros.latest_frame import FrameWorker, LatestFrameSlots
from actiseg_ros.ros.params import make_settings
from actiseg_ros.ros.pipeline import create_pipeline

PROMPTS = ["onion used in the action of cut onion", "knife used in the action of cut onion",
           "left hand used in the action of cut onion"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_export(tmp_path_factory) / "model"


@pytest.fixture(scope="module")
def frames():
    """Two cameras' frames of different sizes (letterboxed differently)."""
    return [SceneStream(seed=1, size=(160, 120), actions=2).render(5).rgb,
            SceneStream(seed=2, size=(200, 100), actions=2).render(9).rgb]


# --- slots ---------------------------------------------------------------------------------------------------

def test_slots_keep_the_newest_frame_per_camera_and_hand_over_all_waiting_at_once():
    slots = LatestFrameSlots(["head", "wrist"])
    for i in range(3):
        slots.put("wrist", "w%d" % i)
    slots.put("head", "h0")
    assert slots.take(timeout=0) == [("head", "h0"), ("wrist", "w2")]  # camera order, newest of each
    assert slots.take(timeout=0) is None
    slots.put("head", "h1")
    assert slots.take(timeout=0) == [("head", "h1")]
    assert slots.received == {"head": 2, "wrist": 3} and slots.dropped == {"head": 0, "wrist": 2}
    with pytest.raises(ValueError, match="distinct"):
        LatestFrameSlots(["head", "head"])
    with pytest.raises(ValueError, match="distinct"):
        LatestFrameSlots([])


def test_a_worker_on_slots_batches_what_waited_while_it_was_busy():
    slots = LatestFrameSlots(["a", "b"])
    batches = []
    busy = threading.Event()

    def handle(items):
        batches.append([key for key, _item in items])
        busy.set()
        time.sleep(0.2)

    worker = FrameWorker(slots, handle)
    worker.start()
    try:
        slots.put("a", 1)
        assert busy.wait(2.0)
        slots.put("a", 2)  # both arrive while the first batch is being handled
        slots.put("b", 3)
        deadline = time.monotonic() + 5
        while len(batches) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        assert worker.stop()
    assert batches == [["a"], ["a", "b"]]
    slots.close()
    assert slots.take(timeout=5.0) is None


# --- batched inference ---------------------------------------------------------------------------------------

@pytest.mark.training
def test_infer_batch_equals_one_frame_at_a_time_in_one_engine_call(tiny, frames):
    predictor = Predictor(tiny, backend="ort-cpu", threads=1)
    try:
        predictor.set_prompts(PROMPTS)
        singles = [predictor.infer(rgb)[:3] for rgb in frames]
        calls = []
        run = predictor.segmenter.run

        def counted(images, tokens, mask):
            calls.append(images.shape[0])
            return run(images, tokens, mask)

        predictor.segmenter.run = counted
        batched, timings = predictor.infer_batch(frames)
        assert calls == [2] and set(timings) == {"preprocess", "segmenter"}
        for (mask, positive, box), (mask_1, positive_1, box_1) in zip(batched, singles):
            assert box == box_1
            np.testing.assert_allclose(positive, positive_1, atol=1e-4)
            np.testing.assert_allclose(mask, mask_1, atol=1e-3)
        # An engine with a build-time batch limit (TensorRT profiles) gets the frames in calls it can take.
        calls.clear()
        predictor.segmenter.max_batch = 1
        split, _timings = predictor.infer_batch(frames + frames[:1])
        assert calls == [1, 1, 1]
        np.testing.assert_allclose(split[2][1], singles[0][1], atol=1e-4)
        # New prompts replace the repeated prompt features of the batch.
        predictor.segmenter.max_batch = None
        predictor.set_prompts(PROMPTS[:2])
        assert predictor.infer_batch(frames)[0][0][1].shape == (2,)
    finally:
        predictor.close()


@pytest.mark.training
def test_pipeline_batch_equals_per_camera_pipelines_and_smooths_each_camera_alone(tiny, frames):
    def settings(**values):
        return make_settings(dict({"model_dir": str(tiny), "backend": "ort-cpu", "threads": 1,
                                   "action": "cut onion with knife", "cameras": ["head", "wrist"]}, **values))

    plain = settings(**{"smoothing.enabled": False})
    shared = create_pipeline(plain)
    assert shared.predictor.segmenter.max_batch in (None, 2)
    results = list(shared.process_batch([("head", frames[0]), ("wrist", frames[1])]))
    assert [r.labels.shape for r in results] == [frames[0].shape[:2], frames[1].shape[:2]]
    for result, rgb in zip(results, frames):
        alone = create_pipeline(plain).process(rgb)
        assert [o.name for o in result.objects] == [o.name for o in alone.objects]
        np.testing.assert_allclose([o.raw_score for o in result.objects], [o.raw_score for o in alone.objects],
                                   atol=1e-4)
        assert (result.labels == alone.labels).mean() > 0.999
        assert {"prompts", "preprocess", "segmenter", "postprocess"} <= set(result.timings_ms)

    smoothed = create_pipeline(settings(**{"smoothing.enabled": True, "smoothing.alpha": 0.5}))
    first = list(smoothed.process_batch([("head", frames[0]), ("wrist", frames[1])]))
    second = list(smoothed.process_batch([("head", frames[1]), ("wrist", frames[0])]))
    for before, after in zip(first, second):  # each camera averages its own frames, not the other camera's
        for a, b in zip(before.objects, after.objects):
            assert b.score == pytest.approx(0.5 * a.raw_score + 0.5 * b.raw_score, abs=1e-6)
    shared.predictor.close()
    smoothed.predictor.close()


# --- two cameras, real processes -----------------------------------------------------------------------------

@pytest.mark.ros
def test_two_cameras_share_one_engine_and_keep_their_own_outputs(tmp_path_factory, tmp_path):
    # The shipped model (its engine run takes ~30 ms a frame here) and cameras at 60 Hz: a frame of each camera
    # arrives during every engine run, so batches of two must form. At 15 Hz with the tiny test model the two
    # streams could stay out of phase for a whole run and never batch (seen in CI).
    from actiseg_ros.paths import models_dir

    model = models_dir() / "default"
    cameras = ("head", "wrist")
    probe = Probe("test_multi_camera_probe", keep_images=False, cameras=cameras)
    node = perception_node(tmp_path / "node.log", {"model_dir": str(model), "cameras": list(cameras),
                                                   "positive_gate": 1e-6, "action": "cut onion with knife"})
    replays = {}
    try:
        assert probe.wait_for_state("active", 90), node.log()
        topics = {names.resolve(names.output_topic(kind, camera)) for kind in names.OUTPUT_KINDS for camera in cameras}
        topics |= {names.resolve(names.camera_topic(camera)) for camera in cameras}
        assert probe.wait_for(lambda: topics <= set(probe.topics()), 20), sorted(probe.topics())
        assert "/actiseg/mask" not in probe.topics() and "/camera/image_raw" not in probe.topics()
        for seed, camera in enumerate(cameras):  # what launch/multi_camera.launch.py starts
            replays[camera] = replay_node(tmp_path / ("%s.log" % camera),
                                          {"width": 320, "height": 240, "seed": seed, "rate": 60.0, "count": 150,
                                           "frame_id": camera, "action_script": [""],
                                           "manifest": str(tmp_path / ("%s.jsonl" % camera))},
                                          remaps={"camera/image_raw": names.camera_topic(camera)})
        for camera, replay in replays.items():
            assert replay.wait(90) == 0, replay.log()
        time.sleep(2.0)  # the last outputs and a diagnostics period
        outputs = probe.snapshot()
        stamps = {camera: {f["stamp_ns"] for f in read_manifest(tmp_path / ("%s.jsonl" % camera))[1]}
                  for camera in cameras}
        assert not stamps["head"] & stamps["wrist"]
        batch_sizes = []
        for camera in cameras:
            mine = {stamp: out for stamp, out in outputs.items() if out.get("camera") == camera and "objects" in out}
            assert len(mine) >= 5, "only %d outputs for %s:\n%s" % (len(mine), camera, node.log()[-2000:])
            assert set(mine) <= stamps[camera], "%s outputs with stamps its camera never sent" % camera
            for out in mine.values():
                assert out["frame_id"] == camera and out["objects"]["camera"] == camera
                assert out["objects"]["image_size"] == [320, 240]
                assert out["objects"]["action"] == "cut onion with knife"
                batch_sizes.append(out["objects"]["batch_size"])
        assert 2 in batch_sizes, "no frames of both cameras ran together: batch sizes %s" % sorted(set(batch_sizes))
        assert set(batch_sizes) <= {1, 2}

        diagnostics = [values for status, _level, _msg, values in list(probe.diagnostics)
                       if status == "actiseg: perception"][-1]
        assert diagnostics["batch_size_max"] == "2"
        for camera in cameras:
            received = int(diagnostics["%s.frames_received" % camera])
            dropped = int(diagnostics["%s.frames_dropped" % camera])
            published = int(diagnostics["%s.frames_published" % camera])
            assert 0 < received <= 150 and published > 0
            assert received - 1 <= published + dropped + int(diagnostics["%s.frames_refused" % camera]) <= received
        assert int(diagnostics["frames_received"]) == sum(int(diagnostics["%s.frames_received" % c]) for c in cameras)
        print("two cameras: batch sizes %s, %s" % ({s: batch_sizes.count(s) for s in set(batch_sizes)},
                                                   {k: v for k, v in diagnostics.items() if "." in k}))
        assert node.alive()
    finally:
        for replay in replays.values():
            replay.stop()
        assert node.stop() == 0
        probe.close()
