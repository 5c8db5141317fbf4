"""keep_freed_buffers: after it, a freed megabyte buffer stays in the process (no mmap per allocation, no trim),
which is what spares the node a page fault per page of every frame-sized buffer."""
import os
import platform
import subprocess
import sys

import pytest

PROBE = r"""
import ctypes, ctypes.util, sys
from actiseg_ros.ros.allocator import keep_freed_buffers

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
tuned = sys.argv[1] == "tuned"
if tuned:
    assert keep_freed_buffers()
size = 3 * 2**20  # above glibc's initial mmap threshold (128 KiB)
before = libc.mallinfo2()
block = libc.malloc(size)
during = libc.mallinfo2()
libc.free(block)
after = libc.mallinfo2()
print(int(during.hblks > before.hblks), int(after.fordblks >= size))
"""


def glibc_with_mallinfo2() -> bool:
    libc, version = platform.libc_ver()
    return libc == "glibc" and tuple(int(p) for p in version.split(".")[:2]) >= (2, 33)


@pytest.mark.skipif(not glibc_with_mallinfo2(), reason="needs glibc >= 2.33 (mallopt and mallinfo2)")
def test_freed_frame_buffers_stay_in_the_process():
    # A fresh interpreter, without malloc settings inherited from the environment, starts from glibc's defaults.
    env = {k: v for k, v in os.environ.items()
           if k not in ("GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}

    def probe(mode):
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                             env=env)
        return out.stdout.split()

    assert probe("default") == ["1", "0"]  # glibc's default: mmap'ed, and unmapped again when freed
    assert probe("tuned") == ["0", "1"]  # tuned: served from the heap and kept there for the next frame


def test_thresholds_outside_a_c_int_are_refused():
    from actiseg_ros.ros.allocator import keep_freed_buffers

    with pytest.raises(ValueError, match="C ints"):
        keep_freed_buffers(mmap_threshold=2**31)
    with pytest.raises(ValueError, match="C ints"):
        keep_freed_buffers(trim_threshold=-1)
