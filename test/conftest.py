"""Test-session environment: isolate ROS 2 traffic and use the product's Fast DDS profile.

Each pytest session picks its own ROS domain and keeps discovery on this host, so parallel runs (or a
developer's running robot) never hear each other. Subprocesses inherit these variables.
"""
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from actiseg_ros.dds import use_default_profile

os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
use_default_profile()


SLOW_MARKS = ("ros", "training", "slow")


def pytest_collection_modifyitems(config, items):
    """Every test that is not marked ros, training or slow is a unit test (`make test-unit`: pytest -m unit)."""
    for item in items:
        if not any(item.get_closest_marker(name) for name in SLOW_MARKS):
            item.add_marker(pytest.mark.unit)


ACTISEG = [str(Path(sys.executable).with_name("actiseg"))]  # the installed entry point, as a user runs it


def run_actiseg(args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(ACTISEG + list(args), capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """The `tiny` synthetic preset, generated once per test session (training and strategy tests share it)."""
    root = tmp_path_factory.mktemp("synth_tiny")
    out = run_actiseg(["synth", "--preset", "tiny", "--seed", "0", "--out", str(root)])
    assert out.returncode == 0, out.stderr
    return root
