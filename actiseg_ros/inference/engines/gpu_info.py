"""Facts about the local GPU stack for engine cache keys, found without torch: the GPU's name and the
TensorRT library version. Each probe is optional: a missing tool gives None, never an exception."""
from __future__ import annotations

import ctypes
import functools
import logging
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

# libnvinfer sonames of the TensorRT majors that can parse opset-17 graphs (JetPack 6 ships 8.6).
NVINFER_LIBRARIES = ("libnvinfer.so.10", "libnvinfer.so.8", "libnvinfer.so")


def import_cudart():
    """cuda-python's runtime module (new layout `cuda.bindings.runtime`, old `cuda.cudart`), or None."""
    try:
        from cuda.bindings import runtime
        return runtime
    except ImportError:
        pass
    try:
        from cuda import cudart
        return cudart
    except ImportError:
        return None


@functools.lru_cache(maxsize=None)
def gpu_name(device_id: int = 0) -> str | None:
    """e.g. 'NVIDIA H200' or 'Orin'; None when no GPU can be seen."""
    cudart = import_cudart()
    if cudart is not None:
        try:
            err, props = cudart.cudaGetDeviceProperties(device_id)
            if int(err) == 0:
                name = props.name
                return (name.split(b"\0")[0].decode() if isinstance(name, bytes) else str(name)).strip()
        except Exception as err:  # driver missing or too old: fall through to the next probe
            log.debug("cuda-python could not read device %d: %s", device_id, err)
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "-i", str(device_id)],
                                 capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError):
            pass
    model = Path("/proc/device-tree/model")  # Jetson boards have no nvidia-smi on older JetPacks
    if model.is_file():
        text = model.read_bytes().rstrip(b"\0").decode(errors="replace").strip()
        if "jetson" in text.lower() or "nvidia" in text.lower():
            return text
    return None


@functools.lru_cache(maxsize=None)
def tensorrt_library_version() -> str | None:
    """The TensorRT version that a TensorRT-based backend will load, e.g. '10.3.0'."""
    try:
        import tensorrt
        return str(tensorrt.__version__)
    except ImportError:
        pass
    for soname in NVINFER_LIBRARIES:
        try:
            library = ctypes.CDLL(soname)
        except OSError:
            continue
        try:
            number = int(library.getInferLibVersion())
        except AttributeError:
            continue
        return version_from_number(number)
    return None


def version_from_number(number: int) -> str:
    """getInferLibVersion() encodings: 8.x gives MAJOR*1000 + MINOR*100 + PATCH (8601 -> 8.6.1),
    10.x gives MAJOR*10000 + MINOR*100 + PATCH (100300 -> 10.3.0)."""
    if number >= 10000:
        return "%d.%d.%d" % (number // 10000, number // 100 % 100, number % 100)
    return "%d.%d.%d" % (number // 1000, number // 100 % 10, number % 100)
