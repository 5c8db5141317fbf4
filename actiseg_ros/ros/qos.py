"""QoS profiles by name, for the camera subscription and the outputs (parameters image_qos, output_qos)."""
from __future__ import annotations


def profile(name: str):
    """'sensor_data': best effort, keep last 1 (newest frame only); 'reliable': reliable, keep last 1 for
    input / 2 for output; 'system_default': the middleware's default; 'command': reliable, volatile, keep last
    10 (the action topic: a transient-local subscription would not hear `ros2 topic pub`)."""
    from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                           qos_profile_system_default)

    if name == "sensor_data":
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                          durability=DurabilityPolicy.VOLATILE)
    if name == "reliable":
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
    if name == "reliable_output":
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
    if name == "system_default":
        return qos_profile_system_default
    if name == "command":
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
    raise ValueError("unknown QoS name %r" % name)


def output_profile(name: str):
    return profile("reliable_output" if name == "reliable" else name)
