"""ROS 2 executables: perception_node (the `actiseg` lifecycle node) and replay_node (a camera stand-in)."""
