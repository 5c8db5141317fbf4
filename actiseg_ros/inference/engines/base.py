"""One interface for every inference backend, and the checks they share.

The graph contracts (training/export.py):
  text_encoder  input_ids (N, L) int64, attention_mask (N, L) int64 -> text_tokens (N, L, C) float32
  segmenter     images (B, 3, H, W) float32, text_tokens (B, K, L, C) float32, text_mask (B, K, L) float32
                -> mask_logits (B, K, H/stride, W/stride) float32, positive_logits (B, K) float32
Inputs are checked here, before any backend sees them: a wrong shape or dtype inside ONNX Runtime or
TensorRT surfaces as an opaque kernel error (or, on a GPU, as garbage read from the wrong stride).
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

# (name, dims, dtype): an int dim is fixed by the contract, an upper-case letter by the model card
# (H, W, L, C), a lower-case letter is dynamic and must agree across the inputs of one call.
SEGMENTER_INPUTS = (("images", ("b", 3, "H", "W"), "float32"),
                    ("text_tokens", ("b", "k", "L", "C"), "float32"),
                    ("text_mask", ("b", "k", "L"), "float32"))
SEGMENTER_OUTPUTS = ("mask_logits", "positive_logits")
TEXT_INPUTS = (("input_ids", ("n", "L"), "int64"), ("attention_mask", ("n", "L"), "int64"))
TEXT_OUTPUTS = ("text_tokens",)


class EngineError(RuntimeError):
    """A graph could not be loaded or built, or does not follow its contract."""


class BackendUnavailable(EngineError):
    """The requested backend cannot run on this machine; `missing` says what is absent."""

    def __init__(self, backend: str, missing: str):
        super().__init__("inference backend '%s' is not available: %s" % (backend, missing))
        self.backend = backend
        self.missing = missing


class EngineInputError(ValueError):
    """Arrays passed to run() do not match the graph contract."""


def check_inputs(spec, arrays, sizes: dict, where: str) -> list:
    """Validate arrays against a contract like SEGMENTER_INPUTS; returns them C-contiguous.

    sizes maps the upper-case letters to the model's values; lower-case letters are bound by the first
    array that uses them and must then agree. Raises EngineInputError naming the input and dimension.
    """
    bound = {}
    checked = []
    for (name, dims, dtype), array in zip(spec, arrays):
        if not isinstance(array, np.ndarray):
            raise EngineInputError("%s: input '%s' must be a numpy array, got %s" % (where, name, type(array).__name__))
        if array.dtype != np.dtype(dtype):
            raise EngineInputError("%s: input '%s' must be %s, got %s" % (where, name, dtype, array.dtype))
        if array.ndim != len(dims):
            raise EngineInputError("%s: input '%s' must have shape %s, got %s"
                                   % (where, name, _describe(dims, sizes), array.shape))
        for axis, (dim, actual) in enumerate(zip(dims, array.shape)):
            if isinstance(dim, int) or dim.isupper():
                expected = dim if isinstance(dim, int) else sizes[dim]
                if actual != expected:
                    raise EngineInputError("%s: input '%s' must have shape %s, got %s (dimension %d is %d, "
                                           "expected %d)" % (where, name, _describe(dims, sizes), array.shape,
                                                             axis, actual, expected))
            else:
                if actual < 1:
                    raise EngineInputError("%s: input '%s' has an empty dimension %d: %s"
                                           % (where, name, axis, array.shape))
                if bound.setdefault(dim, (actual, name))[0] != actual:
                    raise EngineInputError("%s: dimension '%s' is %d in input '%s' but %d in input '%s'"
                                           % (where, dim, bound[dim][0], bound[dim][1], actual, name))
        checked.append(np.ascontiguousarray(array))
    return checked


def _describe(dims, sizes) -> str:
    return "(%s)" % ", ".join(str(sizes.get(d, d)) if isinstance(d, str) else str(d) for d in dims)


def check_graph_io(graph_path, inputs: dict, outputs, spec, output_names, sizes: dict) -> None:
    """A loaded graph declares the contract's inputs and outputs.

    inputs: {name: (dims, dtype name)} as the backend reports them, a dim being an int when the graph fixes
    it and anything else (None, a symbol) when dynamic. Raises EngineError naming the graph and input.
    """
    for name, dims, dtype in spec:
        if name not in inputs:
            raise EngineError("%s: the graph has no input '%s' (inputs: %s); not an actiseg export?"
                              % (graph_path, name, ", ".join(sorted(inputs))))
        actual_dims, actual_dtype = inputs[name]
        if actual_dtype != dtype:
            raise EngineError("%s: input '%s' is %s, the contract says %s" % (graph_path, name, actual_dtype, dtype))
        if len(actual_dims) != len(dims):
            raise EngineError("%s: input '%s' has %d dimensions, the contract says %s"
                              % (graph_path, name, len(actual_dims), _describe(dims, sizes)))
        for axis, (dim, actual) in enumerate(zip(dims, actual_dims)):
            fixed = dim if isinstance(dim, int) else sizes.get(dim)
            if fixed is not None and isinstance(actual, int) and actual != fixed:
                raise EngineError("%s: input '%s' dimension %d is %d, but the model card says %d (card and graph "
                                  "come from different exports?)" % (graph_path, name, axis, actual, fixed))
    for name in output_names:
        if name not in outputs:
            raise EngineError("%s: the graph has no output '%s' (outputs: %s)" % (graph_path, name, ", ".join(outputs)))


class _Engine(ABC):
    name = "abstract"

    @property
    @abstractmethod
    def providers(self) -> list:
        """What really executes the graph, e.g. ['CUDAExecutionProvider', 'CPUExecutionProvider']."""

    @property
    def device(self) -> str:
        return "cpu"

    def close(self) -> None:
        """Release backend resources (sessions, GPU memory)."""


class SegmenterEngine(_Engine):
    """run(images (B,3,H,W) f32, text_tokens (B,K,L,C) f32, text_mask (B,K,L) f32)
    -> (mask_logits (B,K,H/s,W/s) f32, positive_logits (B,K) f32)."""

    max_batch: int | None = None  # backends with build-time shape limits (TensorRT profiles) set these
    max_k: int | None = None

    def __init__(self, input_hw, max_tokens: int, text_width: int):
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.max_tokens = int(max_tokens)
        self.text_width = int(text_width)

    @property
    def sizes(self) -> dict:
        return {"H": self.input_hw[0], "W": self.input_hw[1], "L": self.max_tokens, "C": self.text_width}

    def run(self, images, text_tokens, text_mask) -> tuple:
        images, text_tokens, text_mask = check_inputs(SEGMENTER_INPUTS, (images, text_tokens, text_mask),
                                                      self.sizes, "%s segmenter" % self.name)
        batch, k = text_tokens.shape[:2]
        for label, value, limit in (("batch size", batch, self.max_batch), ("prompt count K", k, self.max_k)):
            if limit is not None and value > limit:
                raise EngineInputError("%s segmenter: %s %d exceeds the engine's maximum %d (raise it in the "
                                       "backend options; TensorRT then rebuilds)" % (self.name, label, value, limit))
        return self._run(images, text_tokens, text_mask)

    @abstractmethod
    def _run(self, images, text_tokens, text_mask) -> tuple:
        """Inputs already validated and contiguous."""


class TextEngine(_Engine):
    """run(input_ids (N,L) int64, attention_mask (N,L) int64) -> text_tokens (N,L,C) float32."""

    max_prompts: int | None = None

    def __init__(self, max_tokens: int, text_width: int):
        self.max_tokens = int(max_tokens)
        self.text_width = int(text_width)

    def run(self, input_ids, attention_mask) -> np.ndarray:
        input_ids, attention_mask = check_inputs(TEXT_INPUTS, (input_ids, attention_mask), {"L": self.max_tokens},
                                                 "%s text encoder" % self.name)
        if self.max_prompts is not None and input_ids.shape[0] > self.max_prompts:
            raise EngineInputError("%s text encoder: %d prompts exceed the engine's maximum %d"
                                   % (self.name, input_ids.shape[0], self.max_prompts))
        return self._run(input_ids, attention_mask)

    @abstractmethod
    def _run(self, input_ids, attention_mask) -> np.ndarray:
        """Inputs already validated and contiguous."""
