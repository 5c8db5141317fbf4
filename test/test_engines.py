"""Inference engines: the TensorRT cache key / path / rebuild logic and backend selection as pure
functions; ONNX Runtime CPU for real on an exported model; native TensorRT and CUDA memory for real only
where they exist (skipped with the missing piece named)."""
import logging
import shutil

import numpy as np
import pytest

from actiseg_ros.inference.engines import plan_cache
from actiseg_ros.inference.engines.base import (SEGMENTER_INPUTS, TEXT_INPUTS, BackendUnavailable, EngineError,
                                                EngineInputError, check_graph_io, check_inputs)
from actiseg_ros.inference.engines.gpu_info import gpu_name, import_cudart, version_from_number
from actiseg_ros.inference.engines.onnxruntime_engine import (OrtOptions, OrtSegmenterEngine, OrtTextEngine,
                                                              check_active_providers, create_session,
                                                              ort_trt_shape_option, provider_config, trt_profile_shapes)
from actiseg_ros.inference.engines.select import (Availability, candidate_backends, create_engine, missing_for,
                                                  probe_availability)
from actiseg_ros.inference.model_card import load_model_card
from exported_model import tiny_export

pytestmark = pytest.mark.training  # real torch models, exports or training steps

ort = pytest.importorskip("onnxruntime")

SIZES = {"H": 64, "W": 96, "L": 32, "C": 384}
PROFILE = {"images": [[1, 3, 64, 96]] * 3, "text_tokens": [[1, 1, 32, 384], [1, 4, 32, 384], [1, 8, 32, 384]]}


def fields(**changes):
    base = dict(graph_sha256="a" * 64, tensorrt_version="10.3.0", gpu="Orin", precision="fp16", profile=PROFILE)
    base.update(changes)
    return plan_cache.plan_key_fields(**base)


# --- cache key, path and rebuild decision ---------------------------------------------------------------

def test_plan_key_depends_on_every_field_and_nothing_else():
    key = plan_cache.plan_key(fields())
    assert plan_cache.plan_key(fields()) == key
    reordered = dict(reversed(list(PROFILE.items())))
    assert plan_cache.plan_key(fields(profile=reordered)) == key
    changed = [fields(graph_sha256="b" * 64), fields(tensorrt_version="8.6.1"), fields(gpu="NVIDIA H200"),
               fields(precision="fp32"), fields(profile=dict(PROFILE, text_tokens=[[1, 1, 32, 384]] * 3))]
    keys = {plan_cache.plan_key(f) for f in changed}
    assert len(keys) == len(changed) and key not in keys
    assert plan_cache.plan_key(dict(fields(), runtime="onnxruntime-1.20")) != key
    with pytest.raises(ValueError, match="precision"):
        fields(precision="int8")


def test_plan_path_names_graph_precision_and_key(tmp_path):
    path = plan_cache.plan_path(tmp_path, "segmenter", fields())
    assert path.parent == tmp_path
    assert path.name == "segmenter-fp16-%s.plan" % plan_cache.plan_key(fields())
    assert plan_cache.plan_path(tmp_path, "segmenter", fields(gpu="other")) != path
    assert plan_cache.meta_path(path).name == path.name + ".json"


def test_rebuild_decision(tmp_path):
    wanted = fields()
    path = plan_cache.plan_path(tmp_path, "segmenter", wanted)
    assert "no cached engine" in plan_cache.rebuild_reason(path, wanted)
    plan_cache.write_plan(path, b"plan bytes", wanted)
    assert plan_cache.rebuild_reason(path, wanted) is None
    assert path.read_bytes() == b"plan bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, path.name + ".json"])  # no temp files
    # A plan whose stored key differs (hand-copied from another machine) is rebuilt, and the reason says why.
    reason = plan_cache.rebuild_reason(path, fields(gpu="NVIDIA H200"))
    assert "cache key changed" in reason and "'Orin' -> 'NVIDIA H200'" in reason
    plan_cache.meta_path(path).write_text("{not json")
    assert "unreadable" in plan_cache.rebuild_reason(path, wanted)
    plan_cache.meta_path(path).unlink()
    assert "no metadata" in plan_cache.rebuild_reason(path, wanted)
    plan_cache.write_plan(path, b"", wanted)
    assert "empty" in plan_cache.rebuild_reason(path, wanted)


def test_stale_plans_are_earlier_keys_of_the_same_graph(tmp_path):
    old, new = fields(tensorrt_version="8.6.1"), fields()
    old_path = plan_cache.plan_path(tmp_path, "segmenter", old)
    new_path = plan_cache.plan_path(tmp_path, "segmenter", new)
    other = plan_cache.plan_path(tmp_path, "text_encoder", old)
    fp32 = plan_cache.plan_path(tmp_path, "segmenter", fields(precision="fp32"))
    for path, key in ((old_path, old), (new_path, new), (other, old), (fp32, fields(precision="fp32"))):
        plan_cache.write_plan(path, b"x", key)
    stale = plan_cache.stale_plans(tmp_path, "segmenter", "fp16", keep=new_path)
    assert stale == sorted([old_path, plan_cache.meta_path(old_path)])
    assert plan_cache.stale_plans(tmp_path / "absent", "segmenter", "fp16", keep=new_path) == []


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(plan_cache.CACHE_ENV, str(tmp_path / "engines"))
    assert plan_cache.default_cache_dir() == tmp_path / "engines"
    monkeypatch.delenv(plan_cache.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert plan_cache.default_cache_dir() == tmp_path / "actiseg_ros" / "engines"


def test_tensorrt_version_numbers():
    assert version_from_number(8601) == "8.6.1"
    assert version_from_number(8502) == "8.5.2"
    assert version_from_number(100300) == "10.3.0"
    assert version_from_number(101200) == "10.12.0"


# --- shape profiles and provider options ----------------------------------------------------------------

def test_profile_shapes_span_batch_and_prompt_ranges():
    profile = trt_profile_shapes(SEGMENTER_INPUTS, SIZES, {"b": (1, 1, 2), "k": (1, 4, 8)})
    assert profile == {"images": [[1, 3, 64, 96], [1, 3, 64, 96], [2, 3, 64, 96]],
                       "text_tokens": [[1, 1, 32, 384], [1, 4, 32, 384], [2, 8, 32, 384]],
                       "text_mask": [[1, 1, 32], [1, 4, 32], [2, 8, 32]]}
    assert ort_trt_shape_option(profile, 2) == "images:2x3x64x96,text_tokens:2x8x32x384,text_mask:2x8x32"
    text = trt_profile_shapes(TEXT_INPUTS, {"L": 32}, {"n": (1, 4, 8)})
    assert text["input_ids"] == [[1, 32], [4, 32], [8, 32]]


def test_provider_config_per_backend(tmp_path):
    options = OrtOptions(device_id=1, fp16=True)
    assert provider_config("ort-cpu", options) == ["CPUExecutionProvider"]
    assert provider_config("ort-cuda", options) == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    profile = trt_profile_shapes(SEGMENTER_INPUTS, SIZES, {"b": (1, 1, 1), "k": (1, 4, 8)})
    trt = provider_config("ort-tensorrt", options, tmp_path, profile)
    name, settings = trt[0]
    assert name == "TensorrtExecutionProvider"
    assert trt[1][0] == "CUDAExecutionProvider" and trt[2] == "CPUExecutionProvider"
    assert settings["trt_fp16_enable"] is True and settings["trt_engine_cache_enable"] is True
    assert settings["trt_engine_cache_path"] == str(tmp_path)
    assert settings["trt_profile_max_shapes"].startswith("images:1x3x64x96,text_tokens:1x8x32x384")
    with pytest.raises(ValueError, match="unknown ONNX Runtime backend"):
        provider_config("ort-rocm", options)


def test_a_provider_that_did_not_load_is_caught():
    check_active_providers("ort-cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(BackendUnavailable, match="CUDAExecutionProvider was requested but did not load"):
        check_active_providers("ort-cuda", ["CPUExecutionProvider"])
    with pytest.raises(BackendUnavailable, match="TensorrtExecutionProvider .* CUDA/TensorRT"):
        check_active_providers("ort-tensorrt", ["CUDAExecutionProvider", "CPUExecutionProvider"])


# --- backend selection ----------------------------------------------------------------------------------

EVERYTHING = Availability(ort_providers=("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
                          tensorrt_missing=None, cuda_python_missing=None)
CPU_ONLY = Availability(ort_providers=("AzureExecutionProvider", "CPUExecutionProvider"),
                        tensorrt_missing="the Python package 'tensorrt' cannot be imported",
                        cuda_python_missing="the Python package 'cuda-python' is not installed")


@pytest.mark.parametrize("availability, expected", [
    (EVERYTHING, ["tensorrt", "ort-tensorrt", "ort-cuda", "ort-cpu"]),
    (CPU_ONLY, ["ort-cpu"]),
    (Availability(ort_providers=("CUDAExecutionProvider", "CPUExecutionProvider"), tensorrt_missing=None,
                  cuda_python_missing="no cuda-python"), ["ort-cuda", "ort-cpu"]),
    (Availability(ort_providers=("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
                  tensorrt_missing="no tensorrt", cuda_python_missing=None), ["ort-tensorrt", "ort-cuda", "ort-cpu"]),
])
def test_auto_orders_available_backends_fastest_first(availability, expected):
    assert candidate_backends("auto", availability) == expected


def test_named_backend_that_cannot_run_says_what_is_missing():
    with pytest.raises(BackendUnavailable,
                       match="'tensorrt' is not available: the Python package 'tensorrt'.*cuda-python"):
        candidate_backends("tensorrt", CPU_ONLY)
    with pytest.raises(BackendUnavailable, match="no CUDAExecutionProvider .* onnxruntime-gpu"):
        candidate_backends("ort-cuda", CPU_ONLY)
    assert missing_for("ort-cpu", CPU_ONLY) is None
    assert "onnxruntime" in missing_for("ort-cpu",
                                        Availability(ort_missing="the Python package 'onnxruntime' is not installed"))
    with pytest.raises(ValueError, match="unknown inference backend 'cuda'"):
        candidate_backends("cuda", CPU_ONLY)


def test_configured_fallback(caplog):
    with caplog.at_level(logging.WARNING):
        assert candidate_backends("tensorrt", CPU_ONLY, fallback="ort-cpu") == ["ort-cpu"]
    assert "falling back to 'ort-cpu'" in caplog.text
    assert candidate_backends("tensorrt", CPU_ONLY, fallback="auto") == ["ort-cpu"]
    # Available: the fallback only follows in case construction fails.
    assert candidate_backends("ort-cuda", EVERYTHING, fallback="ort-cpu") == ["ort-cuda", "ort-cpu"]
    with pytest.raises(BackendUnavailable, match="fallback 'ort-cuda'"):
        candidate_backends("tensorrt", CPU_ONLY, fallback="ort-cuda")


def test_nothing_available_lists_every_reason():
    nothing = Availability(ort_missing="the Python package 'onnxruntime' is not installed",
                           tensorrt_missing="no tensorrt", cuda_python_missing="no cuda-python")
    with pytest.raises(BackendUnavailable,
                       match="no backend can run: tensorrt: no tensorrt.*ort-cpu: the Python package"):
        candidate_backends("auto", nothing)


def test_probe_sees_this_machines_onnxruntime():
    found = probe_availability()
    assert "CPUExecutionProvider" in found.ort_providers and found.ort_missing is None
    assert candidate_backends("auto", found)[-1] == "ort-cpu"


# --- input checks ---------------------------------------------------------------------------------------

def segmenter_arrays(b=1, k=2):
    return [np.zeros((b, 3, 64, 96), np.float32), np.zeros((b, k, 32, 384), np.float32),
            np.ones((b, k, 32), np.float32)]


@pytest.mark.parametrize("index, bad, message", [
    (0, np.zeros((1, 3, 64, 96), np.float64), "'images' must be float32, got float64"),
    (0, np.zeros((3, 64, 96), np.float32), r"'images' must have shape \(b, 3, 64, 96\)"),
    (0, np.zeros((1, 3, 96, 64), np.float32), "dimension 2 is 96, expected 64"),
    (1, np.zeros((1, 2, 16, 384), np.float32), r"'text_tokens' .* \(dimension 2 is 16, expected 32\)"),
    (2, np.ones((1, 3, 32), np.float32), "dimension 'k' is 2 in input 'text_tokens' but 3 in input 'text_mask'"),
    (1, np.zeros((2, 2, 32, 384), np.float32), "dimension 'b' is 1 in input 'images' but 2 in input 'text_tokens'"),
    (2, [[1.0]], "'text_mask' must be a numpy array, got list"),
    (1, np.zeros((1, 0, 32, 384), np.float32), "empty dimension"),
])
def test_segmenter_inputs_are_checked(index, bad, message):
    arrays = segmenter_arrays()
    arrays[index] = bad
    with pytest.raises(EngineInputError, match=message):
        check_inputs(SEGMENTER_INPUTS, arrays, SIZES, "test")


def test_good_inputs_come_back_contiguous():
    arrays = segmenter_arrays()
    arrays[0] = np.zeros((1, 64, 96, 3), np.float32).transpose(0, 3, 1, 2)
    checked = check_inputs(SEGMENTER_INPUTS, arrays, SIZES, "test")
    assert all(a.flags.c_contiguous for a in checked)
    with pytest.raises(EngineInputError, match="'input_ids' must be int64, got int32"):
        check_inputs(TEXT_INPUTS, [np.zeros((2, 32), np.int32), np.zeros((2, 32), np.int64)], {"L": 32}, "test")


def test_graph_io_must_follow_the_contract():
    good = {"images": (["b", 3, 64, 96], "float32"), "text_tokens": (["b", "k", 32, 384], "float32"),
            "text_mask": (["b", "k", 32], "float32")}
    outputs = ["mask_logits", "positive_logits"]
    check_graph_io("g.onnx", good, outputs, SEGMENTER_INPUTS, outputs, SIZES)
    with pytest.raises(EngineError, match="g.onnx: the graph has no input 'text_mask'"):
        check_graph_io("g.onnx", {k: v for k, v in good.items() if k != "text_mask"}, outputs, SEGMENTER_INPUTS,
                       outputs, SIZES)
    with pytest.raises(EngineError, match="dimension 2 is 128, but the model card says 64"):
        check_graph_io("g.onnx", dict(good, images=(["b", 3, 128, 96], "float32")), outputs, SEGMENTER_INPUTS,
                       outputs, SIZES)
    with pytest.raises(EngineError, match="no output 'positive_logits'"):
        check_graph_io("g.onnx", good, ["mask_logits"], SEGMENTER_INPUTS, outputs, SIZES)


# --- ONNX Runtime CPU, for real -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def card(tmp_path_factory):
    return load_model_card(tiny_export(tmp_path_factory) / "model")


def test_ort_cpu_segmenter_matches_a_bare_session(card):
    engine = OrtSegmenterEngine(card.segmenter.path, card.input_hw, card.max_tokens, card.text_width)
    assert engine.providers[0] == "CPUExecutionProvider" and engine.name == "ort-cpu"
    options = engine.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"  # shared robot CPU
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    rng = np.random.default_rng(0)
    h, w = card.input_hw
    images = rng.normal(size=(2, 3, h, w)).astype(np.float32)
    tokens = rng.normal(size=(2, 3, card.max_tokens, card.text_width)).astype(np.float32)
    mask = np.ones((2, 3, card.max_tokens), np.float32)
    mask[:, :, 10:] = 0
    mask_logits, positive_logits = engine.run(images, tokens, mask)
    assert mask_logits.shape == (2, 3) + card.output_hw and positive_logits.shape == (2, 3)
    bare = ort.InferenceSession(str(card.segmenter.path), providers=["CPUExecutionProvider"])
    ref_masks, ref_positive = bare.run(None, {"images": images, "text_tokens": tokens, "text_mask": mask})
    np.testing.assert_allclose(mask_logits, ref_masks, atol=1e-5)
    np.testing.assert_allclose(positive_logits, ref_positive, atol=1e-5)
    with pytest.raises(EngineInputError, match="'images' must have shape"):
        engine.run(images[:, :, :-1], tokens, mask)
    with pytest.raises(EngineInputError, match="must be float32, got float64"):
        engine.run(images.astype(np.float64), tokens, mask)


def test_ort_cpu_text_encoder_zeroes_padding(card):
    engine = OrtTextEngine(card.text_encoder.path, card.max_tokens, card.text_width)
    ids = np.zeros((2, card.max_tokens), np.int64)
    mask = np.zeros((2, card.max_tokens), np.int64)
    ids[:, :4] = [101, 2452, 2005, 102]  # [CLS] cup for [SEP]
    mask[:, :4] = 1
    tokens = engine.run(ids, mask)
    assert tokens.shape == (2, card.max_tokens, card.text_width) and tokens.dtype == np.float32
    assert np.abs(tokens[:, :4]).sum() > 0 and not tokens[:, 4:].any()
    with pytest.raises(EngineInputError, match="'attention_mask' must be int64"):
        engine.run(ids, mask.astype(np.float32))


def test_graph_that_does_not_match_the_card_is_refused(card):
    with pytest.raises(EngineError, match="dimension 2 is 64, but the model card says 128"):
        OrtSegmenterEngine(card.segmenter.path, (128, 96), card.max_tokens, card.text_width)


def test_corrupt_onnx_gives_a_clear_error(card, tmp_path):
    broken = tmp_path / "segmenter.onnx"
    broken.write_bytes(card.segmenter.path.read_bytes()[: 4096])
    with pytest.raises(EngineError, match="segmenter.onnx: ONNX Runtime cannot load this graph"):
        create_session(broken, "ort-cpu", OrtOptions())
    with pytest.raises(EngineError, match="does not exist"):
        create_session(tmp_path / "absent.onnx", "ort-cpu", OrtOptions())


def test_graph_newer_than_onnxruntime_says_so(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 99  # from a future exporter
    onnx.save(model, tmp_path / "future.onnx")
    with pytest.raises(EngineError, match="future.onnx: onnxruntime .* is too old for this graph"):
        create_session(tmp_path / "future.onnx", "ort-cpu", OrtOptions())


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this onnxruntime has CUDA")
def test_gpu_backends_on_a_cpu_onnxruntime_fail_clearly_or_fall_back(card):
    for backend, provider in (("ort-cuda", "CUDAExecutionProvider"), ("ort-tensorrt", "TensorrtExecutionProvider")):
        with pytest.raises(BackendUnavailable, match="no %s" % provider):
            create_engine("segmenter", card, backend)
    engine = create_engine("segmenter", card, "ort-cuda", fallback="ort-cpu")
    assert engine.name == "ort-cpu" and engine.providers[0] == "CPUExecutionProvider"


def test_auto_picks_a_backend_that_really_runs(card):
    engine = create_engine("segmenter", card, "auto")
    h, w = card.input_hw
    out = engine.run(np.zeros((1, 3, h, w), np.float32), np.zeros((1, 1, 32, 384), np.float32),
                     np.ones((1, 1, 32), np.float32))
    assert np.isfinite(out[0]).all() and engine.name in ("tensorrt", "ort-tensorrt", "ort-cuda", "ort-cpu")


# --- native TensorRT and CUDA memory, where they exist ----------------------------------------------

def _tensorrt_or_skip():
    try:
        import tensorrt  # noqa: F401
    except ImportError as err:
        pytest.skip("native TensorRT is not installed here (import tensorrt: %s)" % err)
    if import_cudart() is None:
        pytest.skip("cuda-python (needed by the TensorRT backend for device memory) is not installed here")


def test_tensorrt_missing_is_reported_by_name():
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here; the missing-library message cannot be observed")
    except ImportError:
        pass
    from actiseg_ros.inference.engines.tensorrt_engine import import_tensorrt

    with pytest.raises(BackendUnavailable, match="'tensorrt' cannot be imported"):
        import_tensorrt()


def test_cuda_memory_round_trip():
    if import_cudart() is None:
        pytest.skip("cuda-python is not installed here")
    from actiseg_ros.inference.engines.cuda_memory import CudaRuntime, DeviceBuffer

    try:
        runtime = CudaRuntime(0)
    except BackendUnavailable as err:
        pytest.skip("no usable CUDA GPU here: %s" % err.missing)
    stream = runtime.stream()
    buffer = DeviceBuffer(runtime)
    data = np.arange(12345, dtype=np.float32).reshape(15, 823)
    buffer.upload(data, stream)
    back = np.empty_like(data)
    buffer.download(back, stream)
    stream.synchronize()
    np.testing.assert_array_equal(back, data)
    address = buffer.ptr
    buffer.upload(data[:5], stream)  # smaller: the allocation is reused
    assert buffer.ptr == address
    buffer.free()
    stream.close()
    assert gpu_name(0)  # the cache key names the GPU
    with pytest.raises(BackendUnavailable, match="no usable CUDA device 999"):
        CudaRuntime(999)


def test_native_tensorrt_builds_caches_and_matches_onnxruntime(card, tmp_path):
    _tensorrt_or_skip()
    from actiseg_ros.inference.engines.tensorrt_engine import TrtOptions, TrtSegmenterEngine

    options = TrtOptions(cache_dir=str(tmp_path), max_k=4)
    engine = TrtSegmenterEngine(card.segmenter.path, card.input_hw, card.max_tokens, card.text_width,
                                card.segmenter.sha256, options)
    plan = engine.runner.plan_path
    built_at = plan.stat().st_mtime_ns
    rng = np.random.default_rng(1)
    h, w = card.input_hw
    arrays = [rng.normal(size=(1, 3, h, w)).astype(np.float32),
              rng.normal(size=(1, 3, card.max_tokens, card.text_width)).astype(np.float32),
              np.ones((1, 3, card.max_tokens), np.float32)]
    masks, positive = engine.run(*arrays)
    reference = OrtSegmenterEngine(card.segmenter.path, card.input_hw, card.max_tokens, card.text_width).run(*arrays)
    assert np.abs(masks - reference[0]).max() < 0.05 * (1 + np.abs(reference[0]).max())  # FP16
    assert ((masks > 0) == (reference[0] > 0)).mean() > 0.99
    engine.close()
    again = TrtSegmenterEngine(card.segmenter.path, card.input_hw, card.max_tokens, card.text_width,
                               card.segmenter.sha256, options)
    assert again.runner.plan_path == plan and plan.stat().st_mtime_ns == built_at  # loaded, not rebuilt
    with pytest.raises(EngineInputError, match="prompt count K 5 exceeds the engine's maximum 4"):
        again.run(arrays[0], np.zeros((1, 5, 32, 384), np.float32), np.ones((1, 5, 32), np.float32))
    again.close()
    shutil.rmtree(tmp_path)
