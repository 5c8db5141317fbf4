"""Backend selection: `auto` takes the fastest backend that really works here, in the order
tensorrt > ort-tensorrt > ort-cuda > ort-cpu; a named backend that cannot run raises BackendUnavailable
naming what is missing, unless a fallback backend is configured.

"Really works" is decided in two steps: a cheap probe (is the library importable, does the onnxruntime
build list the provider) rules out what cannot work, and constructing the engine is the final word (a
listed CUDA provider can still fail to load its libraries; the ORT engines detect that).
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass

from .base import BackendUnavailable
from .gpu_info import import_cudart
from .onnxruntime_engine import ORT_PROVIDERS, OrtOptions, available_ort_providers, missing_provider_message
from .tensorrt_engine import TrtOptions

log = logging.getLogger(__name__)

BACKENDS = ("tensorrt", "ort-tensorrt", "ort-cuda", "ort-cpu")  # fastest first
AUTO = "auto"


@dataclass(frozen=True)
class Availability:
    """What the probe found; a None reason means 'importable'."""

    ort_providers: tuple = ()
    ort_missing: str | None = None  # why onnxruntime itself cannot be imported
    tensorrt_missing: str | None = "not probed"
    cuda_python_missing: str | None = "not probed"


def probe_availability() -> Availability:
    """Import checks only (cheap, no GPU work); call once per process."""
    ort_missing = None
    try:
        importlib.import_module("onnxruntime")
    except ImportError as err:
        ort_missing = "the Python package 'onnxruntime' is not installed (%s)" % err
    tensorrt_missing = None
    try:
        importlib.import_module("tensorrt")
    except ImportError as err:
        tensorrt_missing = ("the Python package 'tensorrt' cannot be imported (%s); on Jetson it comes with JetPack, "
                            "elsewhere from NVIDIA's TensorRT wheels" % err)
    cuda_python_missing = None if import_cudart() is not None else (
        "the Python package 'cuda-python' is not installed (pip install cuda-python): the native TensorRT "
        "backend uses it for device memory")
    return Availability(ort_providers=tuple(available_ort_providers()), ort_missing=ort_missing,
                        tensorrt_missing=tensorrt_missing, cuda_python_missing=cuda_python_missing)


def missing_for(backend: str, availability: Availability) -> str | None:
    """None when `backend` may run given the probe, else what is missing (pure)."""
    if backend == "tensorrt":
        reasons = [r for r in (availability.tensorrt_missing, availability.cuda_python_missing) if r]
        return "; ".join(reasons) or None
    if backend in ORT_PROVIDERS:
        if availability.ort_missing:
            return availability.ort_missing
        if ORT_PROVIDERS[backend] not in availability.ort_providers:
            return missing_provider_message(backend, availability.ort_providers)
        return None
    raise ValueError("unknown inference backend %r (choose from %s)" % (backend, ", ".join((AUTO,) + BACKENDS)))


def candidate_backends(requested: str, availability: Availability, fallback: str | None = None) -> list:
    """The backends to try, in order (pure). Raises BackendUnavailable when nothing can run."""
    if fallback is not None and fallback not in BACKENDS + (AUTO,):
        raise ValueError("unknown fallback backend %r (choose from %s)" % (fallback, ", ".join((AUTO,) + BACKENDS)))
    if requested == AUTO:
        found = [b for b in BACKENDS if missing_for(b, availability) is None]
        if not found:
            raise BackendUnavailable(AUTO, "no backend can run: " + "; ".join(
                "%s: %s" % (b, missing_for(b, availability)) for b in BACKENDS))
        return found
    missing = missing_for(requested, availability)  # also rejects unknown names
    chain = [] if missing else [requested]
    fallback_missing = None
    if fallback is not None and fallback != requested:
        try:
            chain += [b for b in candidate_backends(fallback, availability) if b not in chain]
        except BackendUnavailable as err:
            fallback_missing = err.missing
    if not chain:
        raise BackendUnavailable(requested, missing + ("" if fallback_missing is None else
                                                       " (fallback '%s': %s)" % (fallback, fallback_missing)))
    if missing:
        log.warning("inference backend '%s' is not available (%s); falling back to '%s'", requested, missing, chain[0])
    return chain


def _construct(kind: str, backend: str, card, ort_options: OrtOptions, trt_options: TrtOptions):
    if backend == "tensorrt":
        from .tensorrt_engine import TrtSegmenterEngine, TrtTextEngine

        if kind == "segmenter":
            return TrtSegmenterEngine(card.segmenter.path, card.input_hw, card.max_tokens, card.text_width,
                                      card.segmenter.sha256, trt_options)
        return TrtTextEngine(card.text_encoder.path, card.max_tokens, card.text_width, card.text_encoder.sha256,
                             trt_options)
    from .onnxruntime_engine import OrtSegmenterEngine, OrtTextEngine

    if kind == "segmenter":
        return OrtSegmenterEngine(card.segmenter.path, card.input_hw, card.max_tokens, card.text_width, backend,
                                  ort_options, card.segmenter.sha256)
    return OrtTextEngine(card.text_encoder.path, card.max_tokens, card.text_width, backend, ort_options,
                         card.text_encoder.sha256)


def create_engine(kind: str, card, backend: str = AUTO, fallback: str | None = None,
                  ort_options: OrtOptions = OrtOptions(), trt_options: TrtOptions = TrtOptions(),
                  availability: Availability | None = None):
    """kind 'segmenter' or 'text' -> the first candidate backend that constructs; logs the choice."""
    if kind not in ("segmenter", "text"):
        raise ValueError("kind must be 'segmenter' or 'text', got %r" % kind)
    availability = availability or probe_availability()
    chain = candidate_backends(backend, availability, fallback)
    failures = []
    for name in chain:
        try:
            engine = _construct(kind, name, card, ort_options, trt_options)
        except BackendUnavailable as err:
            failures.append("%s: %s" % (name, err.missing))
            log.warning("%s backend '%s' did not start: %s", kind, name, err.missing)
            continue
        log.info("%s engine: %s on %s (providers: %s)%s", kind, name, engine.device, ", ".join(engine.providers),
                 "; skipped " + "; ".join(failures) if failures else "")
        return engine
    raise BackendUnavailable(backend, "no candidate backend started: " + "; ".join(failures))
