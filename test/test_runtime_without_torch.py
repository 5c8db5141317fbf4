"""The runtime package must import and work where torch is not installed (robots, ROS installs)."""
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # command-line subprocesses

BLOCK_AND_IMPORT = r"""
import importlib, importlib.abc, pkgutil, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "transformers"):
            raise ModuleNotFoundError("No module named %r (blocked by test)" % name, name=name)
        return None

sys.meta_path.insert(0, NoTorch())
import actiseg_ros
modules = [m.name for m in pkgutil.walk_packages(actiseg_ros.__path__, "actiseg_ros.")
           if not m.name.startswith("actiseg_ros.training")]
for name in modules:
    importlib.import_module(name)
assert "torch" not in sys.modules
print(len(modules))
"""


def test_every_runtime_module_imports_without_torch(tmp_path):
    # cwd outside the repository: `python -c` puts the cwd first on sys.path, and the source tree would
    # shadow the installed package.
    out = subprocess.run([sys.executable, "-c", BLOCK_AND_IMPORT], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 3


def test_training_command_says_torch_is_missing(tmp_path):
    code = BLOCK_AND_IMPORT.split("import actiseg_ros")[0] + r"""
from actiseg_ros import cli
try:
    cli.main(["train", "--help"])
except SystemExit as err:
    print(err)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert "actiseg train needs the Python package 'torch'" in out.stdout, out.stdout + out.stderr
    assert "pip install 'actiseg_ros[train]'" in out.stdout
