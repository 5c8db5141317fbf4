"""actiseg_ros: action-prompted video object segmentation for ROS 2 (runtime package, no torch)."""

__version__ = "0.1.0"
