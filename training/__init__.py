"""Offline training of the actiseg model (torch). Installed as actiseg_ros.training."""
