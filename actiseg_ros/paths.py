"""Where the installed share/ files (config, launch, models) are.

A colcon or ROS install finds them through the ament index. A plain `pip install` puts them under
`<prefix>/share/actiseg_ros`, which is found even when AMENT_PREFIX_PATH is not set. A source checkout
(running from the repository without installing) uses the repository folders.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = "actiseg_ros"


def share_dir() -> Path:
    """The package's share directory; raises FileNotFoundError naming every place looked at."""
    tried = []
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            return Path(get_package_share_directory(PACKAGE))
        except (PackageNotFoundError, OSError):  # OSError: AMENT_PREFIX_PATH unset
            tried.append("ament index (AMENT_PREFIX_PATH=%s)" % os.environ.get("AMENT_PREFIX_PATH", ""))
    except ImportError:
        tried.append("ament index (ament_index_python not installed)")
    for candidate in (Path(sys.prefix) / "share" / PACKAGE, Path(__file__).resolve().parent.parent):
        if (candidate / "config").is_dir():
            return candidate
        tried.append(str(candidate))
    raise FileNotFoundError("cannot find the share directory of %s; looked in: %s" % (PACKAGE, "; ".join(tried)))


def config_file(name: str) -> Path:
    return share_dir() / "config" / name


def models_dir() -> Path:
    return share_dir() / "models"
