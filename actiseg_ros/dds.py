"""Fast DDS transport set-up.

Fast DDS's default shared-memory segment (512 KiB) is smaller than one VGA frame, so camera images fall
back to UDP and, with best-effort QoS, most of them are lost (13 of 200 VGA frames arrived at 30 Hz in our
measurements). The shipped profile config/fastdds_shm.xml raises the segment to 32 MiB. It is applied
only when the user has not chosen a profile of their own.
"""
from __future__ import annotations

import os
from pathlib import Path

from actiseg_ros.paths import config_file

PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
PROFILE_NAME = "fastdds_shm.xml"


def default_profile() -> Path:
    return config_file(PROFILE_NAME)


def use_default_profile(environ=None) -> str:
    """Point Fast DDS at the shipped profile unless the user set one; returns the profile in force.

    Must run before rclpy.init() (Fast DDS reads the variable when the first participant is created).
    """
    environ = os.environ if environ is None else environ
    if not environ.get(PROFILE_ENV):
        environ[PROFILE_ENV] = str(default_profile())
    return environ[PROFILE_ENV]
