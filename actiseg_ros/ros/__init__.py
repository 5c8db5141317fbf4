"""Plain helpers of the ROS 2 nodes: image conversion, action parsing, smoothing, the newest-frame slot,
parameters, message building and statistics. Modules that build ROS messages import the message packages;
the others are pure numpy/OpenCV and testable without ROS."""
