"""What /diagnostics says in each situation."""
from actiseg_ros.ros.diagnostics import diagnostic_level

GOOD = {"rate_hz": 29.5, "latency_ms_p95": 42.0}


def test_levels():
    assert diagnostic_level("unconfigured", "no model", GOOD, 0, 0) == ("error", "not configured: no model")
    assert diagnostic_level("inactive", None, GOOD, 0, 0)[0] == "ok"
    level, message = diagnostic_level("active", None, GOOD, 0, 0)
    assert level == "warn" and "no camera frames" in message
    assert diagnostic_level("active", None, GOOD, 30, 0) == ("ok", "active, 29.5 Hz, p95 latency 42 ms")
    level, message = diagnostic_level("active", None, GOOD, 30, 2)
    assert level == "warn" and "2 frames refused" in message
    level, message = diagnostic_level("active", None, {}, 5, 5)
    assert level == "warn" and "every recent camera frame was refused" in message
