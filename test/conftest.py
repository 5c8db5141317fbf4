"""Test-session environment: isolate ROS 2 traffic and use the product's Fast DDS profile.

Each pytest session picks its own ROS domain and keeps discovery on this host, so parallel runs (or a
developer's running robot) never hear each other. Subprocesses inherit these variables.
"""
import os
import random

from actiseg_ros.dds import use_default_profile

os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
use_default_profile()
