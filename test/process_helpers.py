"""Kill a training process the moment it has written its first checkpoint (the resume tests' common step)."""
import signal
import subprocess
import time


def kill_after_first_checkpoint(args, latest, timeout: float = 300.0) -> None:
    """Start `args`, SIGKILL it as soon as `latest` exists; fails if it finished first."""
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while not latest.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
