"""Node internals of the ROS 2 perception node: image conversion, action parsing, smoothing, the newest-frame
slot, parameters, QoS, message building, diagnostics and statistics. Modules that build ROS messages import the
message packages; the others are pure numpy/OpenCV and testable without ROS. Tooling (demo, replay sources,
benchmark helpers) lives in actiseg_ros.tools."""
