"""Tooling around the nodes, not needed on the robot: the demo, child-process management, the output collector
and run analysis used by the demo and the node benchmark, and the replay node's frame sources."""
