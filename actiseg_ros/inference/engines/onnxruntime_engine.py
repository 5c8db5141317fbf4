"""ONNX Runtime backends: 'ort-cpu', 'ort-cuda' and 'ort-tensorrt' (TensorRT execution provider, FP16,
engine cache keyed like native TensorRT plans).

ONNX Runtime silently falls back to the CPU when a GPU provider fails to load (missing CUDA/cuDNN/TensorRT
libraries), and the CPU-only wheel merely warns when asked for CUDA. Every session is therefore checked
with session.get_providers() after creation, and a provider that did not really load raises
BackendUnavailable instead of running 10-50x slower than configured.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import plan_cache
from .base import (SEGMENTER_INPUTS, SEGMENTER_OUTPUTS, TEXT_INPUTS, TEXT_OUTPUTS, BackendUnavailable, EngineError,
                   SegmenterEngine, TextEngine, check_graph_io)
from .gpu_info import gpu_name, tensorrt_library_version

log = logging.getLogger(__name__)

ORT_PROVIDERS = {
    "ort-cpu": "CPUExecutionProvider",
    "ort-cuda": "CUDAExecutionProvider",
    "ort-tensorrt": "TensorrtExecutionProvider",
}
ORT_TYPES = {"tensor(float)": "float32", "tensor(int64)": "int64", "tensor(int32)": "int32",
             "tensor(float16)": "float16"}


@dataclass(frozen=True)
class OrtOptions:
    threads: int = 0  # intra-op threads; 0 lets ONNX Runtime use one per physical core
    # Idle pool threads spin by default in ONNX Runtime. A robot's CPU is shared with drivers and other
    # nodes; measured on 2 cores beside a busy job, spinning doubled the segmenter's latency (82 vs 45 ms).
    spin: bool = False
    device_id: int = 0
    fp16: bool = True  # TensorRT EP only
    cache_dir: str | None = None  # TensorRT EP engine cache root; None = plan_cache.default_cache_dir()
    max_batch: int = 1  # TensorRT EP shape profile: largest B / K / N it is built for
    max_k: int = 8
    max_prompts: int = 8
    # Dequantize int8 weights once when the session loads instead of at every run. ONNX Runtime does not
    # constant-fold DequantizeLinear by default (it keeps Q/DQ pairs for its quantized kernels, and with
    # them the shipped int8 text encoder runs a fused kernel whose features differ from the plain graph's by
    # up to 0.077); "session.disable_quant_qdq" lets it fold them: the plain graph's float32 numbers up to
    # rounding, 1.5-1.9x faster for 10 prompts on one core (docs/audit/speed.md), but ~90 MB of float32
    # weights in memory instead of 23 MB. The offline audit turns it on; the node keeps the smaller default.
    fold_int8_weights: bool = False


def import_onnxruntime():
    try:
        import onnxruntime
    except ModuleNotFoundError:
        raise BackendUnavailable("onnxruntime", "the Python package 'onnxruntime' is not installed "
                                 "(pip install onnxruntime, or onnxruntime-gpu for CUDA/TensorRT)") from None
    return onnxruntime


def available_ort_providers() -> list:
    """Providers this onnxruntime build lists; listed is not loaded (see module doc)."""
    try:
        return list(import_onnxruntime().get_available_providers())
    except BackendUnavailable:
        return []


def missing_provider_message(backend: str, listed) -> str:
    provider = ORT_PROVIDERS[backend]
    return ("this onnxruntime build has no %s (it lists: %s); install onnxruntime-gpu (pip install "
            "'actiseg_ros[gpu]')%s" % (provider, ", ".join(listed) or "nothing",
                                        " and the TensorRT libraries" if backend == "ort-tensorrt" else ""))


def trt_profile_shapes(input_spec, sizes: dict, dynamic_ranges: dict) -> dict:
    """{input: [min, opt, max] shapes} for a contract like SEGMENTER_INPUTS.

    dynamic_ranges maps each lower-case dimension to (min, opt, max), e.g. {'b': (1, 1, 1), 'k': (1, 4, 8)}.
    """
    profile = {}
    for name, dims, _dtype in input_spec:
        shapes = []
        for level in range(3):
            shapes.append([d if isinstance(d, int) else sizes[d] if d.isupper() else int(dynamic_ranges[d][level])
                           for d in dims])
        profile[name] = shapes
    return profile


def ort_trt_shape_option(profile: dict, level: int) -> str:
    """TensorRT EP's 'trt_profile_*_shapes' syntax: 'images:1x3x192x320,text_mask:1x1x32'."""
    return ",".join("%s:%s" % (name, "x".join(str(v) for v in shapes[level])) for name, shapes in profile.items())


def provider_config(backend: str, options: OrtOptions, trt_cache: Path | None = None,
                    profile: dict | None = None) -> list:
    """The `providers` argument of InferenceSession for a backend (pure: the cache folder is given)."""
    if backend == "ort-cpu":
        return ["CPUExecutionProvider"]
    cuda = ("CUDAExecutionProvider", {"device_id": options.device_id})
    if backend == "ort-cuda":
        return [cuda, "CPUExecutionProvider"]
    if backend == "ort-tensorrt":
        trt = {"device_id": options.device_id, "trt_fp16_enable": bool(options.fp16),
               "trt_engine_cache_enable": True, "trt_engine_cache_path": str(trt_cache),
               "trt_timing_cache_enable": True, "trt_timing_cache_path": str(trt_cache)}
        if profile:
            trt.update({"trt_profile_min_shapes": ort_trt_shape_option(profile, 0),
                        "trt_profile_opt_shapes": ort_trt_shape_option(profile, 1),
                        "trt_profile_max_shapes": ort_trt_shape_option(profile, 2)})
        return [("TensorrtExecutionProvider", trt), cuda, "CPUExecutionProvider"]
    raise ValueError("unknown ONNX Runtime backend %r (choose from %s)" % (backend, ", ".join(ORT_PROVIDERS)))


def _prepare_trt_cache(graph_name: str, graph_sha256: str, options: OrtOptions, profile: dict) -> tuple:
    """Key and folder of the TensorRT EP engine cache; a folder whose recorded key differs is emptied."""
    ort = import_onnxruntime()
    fields = plan_cache.plan_key_fields(graph_sha256, tensorrt_library_version() or "unknown",
                                        gpu_name(options.device_id) or "unknown",
                                        "fp16" if options.fp16 else "fp32", profile,
                                        runtime="onnxruntime-%s" % ort.__version__)
    folder = plan_cache.plan_path(options.cache_dir or plan_cache.default_cache_dir(), "ort-" + graph_name, fields,
                                  suffix="")
    reason = plan_cache.rebuild_reason(folder, fields)
    if reason:
        if folder.is_dir():
            shutil.rmtree(folder)
        log.warning("ort-tensorrt: building the TensorRT engine for %s (%s); a first build can take minutes",
                    graph_name, reason)
    else:
        log.info("ort-tensorrt: using the cached TensorRT engine in %s", folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder, fields


def create_session(graph_path, backend: str, options: OrtOptions, graph_sha256: str | None = None,
                   profile: dict | None = None):
    """An InferenceSession that really runs on `backend`'s provider; raises BackendUnavailable or EngineError."""
    ort = import_onnxruntime()
    provider = ORT_PROVIDERS.get(backend)
    if provider is None:
        raise ValueError("unknown ONNX Runtime backend %r (choose from %s)" % (backend, ", ".join(ORT_PROVIDERS)))
    listed = ort.get_available_providers()
    if provider not in listed:
        raise BackendUnavailable(backend, missing_provider_message(backend, listed))
    graph_path = Path(graph_path)
    if not graph_path.is_file():
        raise EngineError("ONNX graph %s does not exist" % graph_path)
    trt_cache = fields = None
    if backend == "ort-tensorrt":
        trt_cache, fields = _prepare_trt_cache(graph_path.stem, graph_sha256 or "unknown", options, profile or {})
    session_options = ort.SessionOptions()
    session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session_options.intra_op_num_threads = int(options.threads)
    if not options.spin:
        session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if options.fold_int8_weights:
        session_options.add_session_config_entry("session.disable_quant_qdq", "1")
    session_options.log_severity_level = 3  # provider fallbacks are detected below, not read from logs
    try:
        session = ort.InferenceSession(str(graph_path), session_options,
                                       providers=provider_config(backend, options, trt_cache, profile))
    except Exception as err:  # onnxruntime raises its own Fail/InvalidProtobuf/RuntimeException types
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if backend != "ort-cpu" and any(w in message for w in ("CUDA", "cuda", "TensorRT", "libcu", "libnvinfer")):
            raise BackendUnavailable(backend, "%s failed to start for %s: %s"
                                     % (provider, graph_path, message)) from None
        if "IR version" in message or "opset" in message.lower():
            raise EngineError("%s: onnxruntime %s is too old for this graph (%s); upgrade onnxruntime"
                              % (graph_path, ort.__version__, message)) from None
        raise EngineError("%s: ONNX Runtime cannot load this graph (%s: %s); the file may be damaged, re-export it"
                          % (graph_path, type(err).__name__, message)) from None
    check_active_providers(backend, session.get_providers())
    if fields is not None:
        plan_cache.write_meta(trt_cache, fields)
    return session


def check_active_providers(backend: str, active) -> None:
    """Raise BackendUnavailable unless the session's first provider is the one `backend` asked for."""
    provider = ORT_PROVIDERS[backend]
    if not active or active[0] != provider:
        raise BackendUnavailable(backend, "%s was requested but did not load (the session runs on %s); check that "
                                 "the CUDA%s libraries match this onnxruntime build"
                                 % (provider, ", ".join(active) or "nothing",
                                    "/TensorRT" if backend == "ort-tensorrt" else ""))


def session_io(session) -> tuple:
    """({input name: (dims, dtype)}, [output names]) as check_graph_io expects them."""
    inputs = {i.name: (list(i.shape), ORT_TYPES.get(i.type, i.type)) for i in session.get_inputs()}
    return inputs, [o.name for o in session.get_outputs()]


class OrtSession:
    """What both ONNX Runtime engines share: the session's real providers, the device, closing."""

    @property
    def providers(self) -> list:
        return self.session.get_providers()

    @property
    def device(self) -> str:
        return "cpu" if self.name == "ort-cpu" else "cuda:%d" % self.options.device_id

    def close(self) -> None:
        self.session = None


class OrtSegmenterEngine(OrtSession, SegmenterEngine):
    def __init__(self, graph_path, input_hw, max_tokens: int, text_width: int, backend: str = "ort-cpu",
                 options: OrtOptions = OrtOptions(), graph_sha256: str | None = None):
        super().__init__(input_hw, max_tokens, text_width)
        self.name = backend
        self.options = options
        profile = trt_profile_shapes(SEGMENTER_INPUTS, self.sizes,
                                     {"b": (1, 1, options.max_batch), "k": (1, min(4, options.max_k), options.max_k)})
        if backend == "ort-tensorrt":  # only TensorRT fixes shape limits at build time
            self.max_batch, self.max_k = options.max_batch, options.max_k
        self.session = create_session(graph_path, backend, options, graph_sha256, profile)
        inputs, outputs = session_io(self.session)
        check_graph_io(graph_path, inputs, outputs, SEGMENTER_INPUTS, SEGMENTER_OUTPUTS, self.sizes)
        self._outputs = list(SEGMENTER_OUTPUTS)


    def _run(self, images, text_tokens, text_mask) -> tuple:
        mask_logits, positive_logits = self.session.run(
            self._outputs, {"images": images, "text_tokens": text_tokens, "text_mask": text_mask})
        return mask_logits, positive_logits



class OrtTextEngine(OrtSession, TextEngine):
    def __init__(self, graph_path, max_tokens: int, text_width: int, backend: str = "ort-cpu",
                 options: OrtOptions = OrtOptions(), graph_sha256: str | None = None):
        super().__init__(max_tokens, text_width)
        self.name = backend
        self.options = options
        profile = trt_profile_shapes(TEXT_INPUTS, {"L": max_tokens}, {"n": (1, min(4, options.max_prompts),
                                                                             options.max_prompts)})
        if backend == "ort-tensorrt":
            self.max_prompts = options.max_prompts
        self.session = create_session(graph_path, backend, options, graph_sha256, profile)
        inputs, outputs = session_io(self.session)
        check_graph_io(graph_path, inputs, outputs, TEXT_INPUTS, TEXT_OUTPUTS, {"L": max_tokens})


    def _run(self, input_ids, attention_mask) -> np.ndarray:
        tokens = self.session.run(list(TEXT_OUTPUTS), {"input_ids": input_ids, "attention_mask": attention_mask})[0]
        if tokens.shape[-1] != self.text_width:
            raise EngineError("text encoder returned width %d, the model card says %d"
                              % (tokens.shape[-1], self.text_width))
        return tokens

