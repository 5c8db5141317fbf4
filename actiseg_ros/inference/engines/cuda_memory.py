"""Device memory and streams for the native TensorRT backend through cuda-python (no torch, no pycuda).

Every CUDA call's status is checked: a failed copy that goes unnoticed hands TensorRT stale memory and
the robot gets last frame's masks.
"""
from __future__ import annotations

import numpy as np

from .base import BackendUnavailable, EngineError
from .gpu_info import import_cudart

INSTALL_HINT = ("the native TensorRT backend moves tensors with cuda-python; install it with "
                "pip install cuda-python (match your CUDA major version)")


def _handle(value) -> int:
    """cuda-python handle objects -> the integer address TensorRT and cudaMemcpy take."""
    try:
        return int(value)
    except TypeError:
        return int(value.getPtr())


class CudaRuntime:
    """Thin checked wrapper around cuda-python's runtime API."""

    def __init__(self, device_id: int = 0):
        cudart = import_cudart()
        if cudart is None:
            raise BackendUnavailable("tensorrt", INSTALL_HINT)
        self.cudart = cudart
        self.device_id = device_id
        try:
            self.call("cudaSetDevice", device_id)
        except EngineError as err:  # no driver or no such GPU: the backend cannot run here at all
            raise BackendUnavailable("tensorrt", "no usable CUDA device %d (%s)" % (device_id, err)) from None

    def call(self, function: str, *args):
        """cudart.<function>(*args) with its error code checked; returns the remaining results."""
        result = getattr(self.cudart, function)(*args)
        result = result if isinstance(result, tuple) else (result,)
        status, values = result[0], result[1:]
        if int(status) != 0:
            described = self.cudart.cudaGetErrorString(status)
            text = described[1] if isinstance(described, tuple) else described
            text = text.decode() if isinstance(text, bytes) else str(text)
            raise EngineError("CUDA call %s failed on device %d: %s (%s)"
                              % (function, self.device_id, text, int(status)))
        if not values:
            return None
        return values[0] if len(values) == 1 else values

    def stream(self) -> "CudaStream":
        return CudaStream(self)


class CudaStream:
    def __init__(self, runtime: CudaRuntime):
        self.runtime = runtime
        self.stream = runtime.call("cudaStreamCreate")
        self.handle = _handle(self.stream)

    def synchronize(self) -> None:
        self.runtime.call("cudaStreamSynchronize", self.stream)

    def close(self) -> None:
        if self.stream is not None:
            self.runtime.call("cudaStreamDestroy", self.stream)
            self.stream = None


class DeviceBuffer:
    """A growable device allocation; reused across frames so steady state allocates nothing."""

    def __init__(self, runtime: CudaRuntime):
        self.runtime = runtime
        self.ptr = 0
        self.nbytes = 0

    def ensure(self, nbytes: int) -> int:
        """Make the buffer hold at least nbytes; returns the device address."""
        if nbytes > self.nbytes:
            self.free()
            self.ptr = _handle(self.runtime.call("cudaMalloc", max(int(nbytes), 1)))
            self.nbytes = int(nbytes)
        return self.ptr

    def upload(self, host: np.ndarray, stream: CudaStream) -> None:
        host = np.ascontiguousarray(host)
        self.ensure(host.nbytes)
        kind = self.runtime.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self.runtime.call("cudaMemcpyAsync", self.ptr, host.ctypes.data, host.nbytes, kind, stream.stream)

    def download(self, host: np.ndarray, stream: CudaStream) -> None:
        """Copy into `host` (C-contiguous, at most self.nbytes); call stream.synchronize() before reading it."""
        if not host.flags.c_contiguous or host.nbytes > self.nbytes:
            raise EngineError("download target must be C-contiguous and at most %d bytes, got %d"
                              % (self.nbytes, host.nbytes))
        kind = self.runtime.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self.runtime.call("cudaMemcpyAsync", host.ctypes.data, self.ptr, host.nbytes, kind, stream.stream)

    def free(self) -> None:
        if self.ptr:
            self.runtime.call("cudaFree", self.ptr)
            self.ptr = 0
            self.nbytes = 0
