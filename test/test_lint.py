"""The package's lint test (ament_flake8's role in a ROS package): ruff with the committed ruff.toml over every
Python file of the repository. Marked `unit`: it is part of the one-minute run."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent


def _ruff() -> str:
    beside = Path(sys.executable).with_name("ruff")  # the venv's, pinned in requirements.txt
    found = str(beside) if beside.is_file() else shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed: pip install -r requirements.txt (it pins ruff)")
    return found


def test_ruff_finds_nothing():
    out = subprocess.run([_ruff(), "check", "--no-cache", "--output-format", "concise", str(ROOT)], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, "ruff found problems (fix them or explain in ruff.toml):\n" + out.stdout + out.stderr


def test_ruff_config_is_the_committed_one():
    # A lint test that silently lints nothing could never fail: the config must select the pycodestyle and
    # pyflakes rules, and ruff must really see a violation in a file that has one.
    out = subprocess.run([_ruff(), "check", "--no-cache", "--output-format", "concise", "--stdin-filename",
                          str(ROOT / "actiseg_ros" / "probe.py"), "-"], cwd=ROOT, input="import os\nx = 1 \n",
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert "F401" in out.stdout and "W291" in out.stdout
