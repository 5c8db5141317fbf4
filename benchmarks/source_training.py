"""The training package from this source tree, for benchmark scripts run from a checkout.

training/ is installed as actiseg_ros.training; a benchmark measures the source tree's code instead, so it
loads training/ under that name itself (actiseg_ros is whichever one sys.path finds).
"""
import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def import_training():
    """Load REPO/training as `actiseg_ros.training` (in sys.modules and as the actiseg_ros attribute)."""
    import actiseg_ros

    spec = importlib.util.spec_from_file_location("actiseg_ros.training", REPO / "training" / "__init__.py",
                                                  submodule_search_locations=[str(REPO / "training")])
    module = importlib.util.module_from_spec(spec)
    sys.modules["actiseg_ros.training"] = module
    spec.loader.exec_module(module)
    actiseg_ros.training = module
