"""Native TensorRT backend ('tensorrt'): build a plan from the ONNX graph once, cache it, run it.

The plan is built with one optimisation profile spanning the batch and prompt-count ranges (FP16 by
default) and cached under a key of graph sha256 + TensorRT version + GPU name + precision + profile
(plan_cache.py); it is rebuilt when any of those change and loaded otherwise. `tensorrt` and cuda-python
are imported only when this backend is constructed, so machines without them never touch them.
Works with the name-based tensor API of TensorRT 8.5+ (JetPack 6 ships 8.6) and 10.x.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import plan_cache
from .base import (SEGMENTER_INPUTS, SEGMENTER_OUTPUTS, TEXT_INPUTS, TEXT_OUTPUTS, BackendUnavailable, EngineError,
                   SegmenterEngine, TextEngine, check_graph_io)
from .cuda_memory import CudaRuntime, DeviceBuffer
from .gpu_info import gpu_name
from .onnxruntime_engine import trt_profile_shapes

log = logging.getLogger(__name__)

HEARTBEAT_S = 30.0  # TensorRT 8 has no progress callback: say "still building" this often


@dataclass(frozen=True)
class TrtOptions:
    device_id: int = 0
    fp16: bool = True
    cache_dir: str | None = None  # None = plan_cache.default_cache_dir()
    max_batch: int = 1  # the optimisation profile covers B in [1, max_batch] and K in [1, max_k]
    max_k: int = 8
    max_prompts: int = 8
    workspace_mb: int = 1024


def import_tensorrt():
    try:
        import tensorrt
    except ImportError as err:
        raise BackendUnavailable("tensorrt", "the Python package 'tensorrt' cannot be imported (%s); on Jetson it "
                                 "comes with JetPack (python3-libnvinfer), elsewhere from NVIDIA's TensorRT "
                                 "wheels (pip install 'actiseg_ros[trt]')" % err) from None
    return tensorrt


def _make_logger(trt):
    class Logger(trt.ILogger):
        """Route TensorRT's messages to Python logging (TensorRT's default logger prints to stderr)."""

        severity = trt.ILogger.Severity
        levels = {severity.INTERNAL_ERROR: logging.CRITICAL, severity.ERROR: logging.ERROR,
                  severity.WARNING: logging.WARNING, severity.INFO: logging.DEBUG, severity.VERBOSE: logging.DEBUG}

        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors = []

        def log(self, severity, msg):
            level = self.levels.get(severity, logging.INFO)
            if level >= logging.ERROR:
                self.errors.append(msg)
            log.log(level, "TensorRT: %s", msg)

    return Logger()


def _make_progress_monitor(trt, graph_name: str):
    """Log top-level build phases (TensorRT >= 10); None where the API is absent."""
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class Progress(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.started = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.started[phase_name] = time.monotonic()
            if parent_phase is None:
                log.info("tensorrt: building %s: %s (%d steps)", graph_name, phase_name, num_steps)

        def step_complete(self, phase_name, step):
            return True  # never cancel

        def phase_finish(self, phase_name):
            began = self.started.pop(phase_name, None)
            if began is not None and not self.started:
                log.info("tensorrt: building %s: %s done in %.1f s", graph_name, phase_name, time.monotonic() - began)

    return Progress()


def build_plan(trt, onnx_path: Path, profile: dict, fp16: bool, workspace_mb: int, graph_name: str) -> bytes:
    """Parse the ONNX graph and build a serialized engine (minutes for big graphs; progress is logged)."""
    logger = _make_logger(trt)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH") and int(trt.__version__.split(".")[0]) < 10:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # from the file, so external weight files resolve
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineError("%s: TensorRT %s cannot parse this graph: %s"
                          % (onnx_path, trt.__version__, "; ".join(errors)))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    if fp16:
        if not getattr(builder, "platform_has_fast_fp16", True):  # deprecated in TensorRT 10
            log.warning("tensorrt: this GPU has no fast FP16; building %s in FP16 anyway as configured", graph_name)
        config.set_flag(trt.BuilderFlag.FP16)
    optimization = builder.create_optimization_profile()
    for name, (low, opt, high) in profile.items():
        optimization.set_shape(name, low, opt, high)
    config.add_optimization_profile(optimization)
    monitor = _make_progress_monitor(trt, graph_name)
    if monitor is not None:
        config.progress_monitor = monitor
    log.warning("tensorrt: building the %s engine from %s (%s, profile %s); first builds take minutes",
                graph_name, Path(onnx_path).name, "fp16" if fp16 else "fp32", profile)
    began = time.monotonic()
    done = threading.Event()

    def heartbeat():
        while not done.wait(HEARTBEAT_S):
            log.info("tensorrt: still building %s (%.0f s)", graph_name, time.monotonic() - began)

    ticker = threading.Thread(target=heartbeat, daemon=True)
    ticker.start()
    try:
        plan = builder.build_serialized_network(network, config)
    finally:
        done.set()
    if plan is None:
        raise EngineError("%s: TensorRT failed to build an engine: %s"
                          % (onnx_path, "; ".join(logger.errors) or "no reason given"))
    log.warning("tensorrt: built %s in %.1f s", graph_name, time.monotonic() - began)
    return bytes(plan)


def load_or_build(trt, onnx_path: Path, graph_sha256: str, profile: dict, options: TrtOptions) -> tuple:
    """-> (plan bytes, plan path): the cached plan when its key matches, else a fresh build written to cache."""
    precision = "fp16" if options.fp16 else "fp32"
    fields = plan_cache.plan_key_fields(graph_sha256, trt.__version__, gpu_name(options.device_id) or "unknown",
                                        precision, profile)
    cache_dir = Path(options.cache_dir) if options.cache_dir else plan_cache.default_cache_dir()
    graph_name = Path(onnx_path).stem
    path = plan_cache.plan_path(cache_dir, graph_name, fields)
    reason = plan_cache.rebuild_reason(path, fields)
    if reason is None:
        log.info("tensorrt: loading cached engine %s", path)
        return path.read_bytes(), path
    log.info("tensorrt: %s", reason)
    plan = build_plan(trt, onnx_path, profile, options.fp16, options.workspace_mb, graph_name)
    plan_cache.write_plan(path, plan, fields)
    for stale in plan_cache.stale_plans(cache_dir, graph_name, precision, keep=path):
        log.info("tensorrt: removing stale engine %s", stale)
        stale.unlink(missing_ok=True)
    return plan, path


class TrtRunner:
    """One deserialized engine with its execution context, stream and reusable device buffers."""

    def __init__(self, onnx_path, graph_sha256: str, profile: dict, options: TrtOptions):
        trt = import_tensorrt()
        self.trt = trt
        self.cuda = CudaRuntime(options.device_id)
        self.logger = _make_logger(trt)
        self.runtime = trt.Runtime(self.logger)
        plan, path = load_or_build(trt, Path(onnx_path), graph_sha256, profile, options)
        self.engine = self.runtime.deserialize_cuda_engine(plan)
        if self.engine is None:  # e.g. a plan copied from another machine under the same key
            log.warning("tensorrt: cached engine %s does not load here; rebuilding", path)
            path.unlink(missing_ok=True)
            plan, path = load_or_build(trt, Path(onnx_path), graph_sha256, profile, options)
            self.engine = self.runtime.deserialize_cuda_engine(plan)
            if self.engine is None:
                raise EngineError("%s: TensorRT built an engine it cannot load: %s"
                                  % (path, "; ".join(self.logger.errors)))
        self.plan_path = path
        self.context = self.engine.create_execution_context()
        self.stream = self.cuda.stream()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.inputs = [n for n in names if is_input[n]]
        self.outputs = [n for n in names if not is_input[n]]
        self.dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}
        self.buffers = {n: DeviceBuffer(self.cuda) for n in names}

    def io(self, contract_dtypes: dict) -> tuple:
        """({input: (dims, dtype)}, [outputs]) for check_graph_io; -1 dims are dynamic.

        TensorRT 8 narrows int64 inputs to int32; run() casts on the host, so that counts as the contract's int64.
        """
        inputs = {}
        for name in self.inputs:
            dtype = self.dtypes[name].name
            if dtype == "int32" and contract_dtypes.get(name) == "int64":
                dtype = "int64"
            dims = [d if d >= 0 else None for d in self.engine.get_tensor_shape(name)]
            inputs[name] = (dims, dtype)
        return inputs, list(self.outputs)

    def run(self, feeds: dict) -> dict:
        for name in self.inputs:
            host = np.ascontiguousarray(feeds[name], dtype=self.dtypes[name])
            if not self.context.set_input_shape(name, host.shape):
                raise EngineError("tensorrt: input '%s' shape %s is outside the engine's profile" % (name, host.shape))
            self.buffers[name].upload(host, self.stream)
            self.context.set_tensor_address(name, self.buffers[name].ptr)
        results = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            results[name] = np.empty(shape, self.dtypes[name])
            self.context.set_tensor_address(name, self.buffers[name].ensure(results[name].nbytes))
        if not self.context.execute_async_v3(self.stream.handle):
            raise EngineError("tensorrt: execution failed: %s" % "; ".join(self.logger.errors[-3:]))
        for name in self.outputs:
            self.buffers[name].download(results[name], self.stream)
        self.stream.synchronize()
        return {name: value.astype(np.float32, copy=False) for name, value in results.items()}

    def close(self) -> None:
        for buffer in self.buffers.values():
            buffer.free()
        self.stream.close()
        self.context = self.engine = None


class TrtEngineBase:
    """What both native TensorRT engines share: version, device, closing the runner."""

    @property
    def providers(self) -> list:
        return ["TensorRT %s" % self.runner.trt.__version__]

    @property
    def device(self) -> str:
        return "cuda:%d (%s)" % (self.options.device_id, gpu_name(self.options.device_id) or "unknown GPU")

    def close(self) -> None:
        self.runner.close()


class TrtSegmenterEngine(TrtEngineBase, SegmenterEngine):
    name = "tensorrt"

    def __init__(self, graph_path, input_hw, max_tokens: int, text_width: int, graph_sha256: str,
                 options: TrtOptions = TrtOptions()):
        super().__init__(input_hw, max_tokens, text_width)
        self.options = options
        self.max_batch, self.max_k = options.max_batch, options.max_k
        profile = trt_profile_shapes(SEGMENTER_INPUTS, self.sizes,
                                     {"b": (1, 1, options.max_batch), "k": (1, min(4, options.max_k), options.max_k)})
        self.runner = TrtRunner(graph_path, graph_sha256, profile, options)
        inputs, outputs = self.runner.io({n: d for n, _, d in SEGMENTER_INPUTS})
        check_graph_io(graph_path, inputs, outputs, SEGMENTER_INPUTS, SEGMENTER_OUTPUTS, self.sizes)


    def _run(self, images, text_tokens, text_mask) -> tuple:
        out = self.runner.run({"images": images, "text_tokens": text_tokens, "text_mask": text_mask})
        return out["mask_logits"], out["positive_logits"]



class TrtTextEngine(TrtEngineBase, TextEngine):
    name = "tensorrt"

    def __init__(self, graph_path, max_tokens: int, text_width: int, graph_sha256: str,
                 options: TrtOptions = TrtOptions()):
        super().__init__(max_tokens, text_width)
        self.options = options
        self.max_prompts = options.max_prompts
        profile = trt_profile_shapes(TEXT_INPUTS, {"L": max_tokens},
                                     {"n": (1, min(4, options.max_prompts), options.max_prompts)})
        self.runner = TrtRunner(graph_path, graph_sha256, profile, options)
        inputs, outputs = self.runner.io({n: d for n, _, d in TEXT_INPUTS})
        check_graph_io(graph_path, inputs, outputs, TEXT_INPUTS, TEXT_OUTPUTS, {"L": max_tokens})


    def _run(self, input_ids, attention_mask) -> np.ndarray:
        return self.runner.run({"input_ids": input_ids, "attention_mask": attention_mask})["text_tokens"]

