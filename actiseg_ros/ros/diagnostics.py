"""What the node reports on /diagnostics: a level and a one-line message from its state and recent numbers."""
from __future__ import annotations


def diagnostic_level(state: str, configure_error: str | None, summary: dict, received_recent: int,
                     errors_recent: int) -> tuple:
    """-> (level 'ok' | 'warn' | 'error', message).

    state: lifecycle state label; summary: OutputStats.summary(); received_recent / errors_recent: camera
    frames received and frames refused (conversion or inference errors) since the previous report.
    """
    if configure_error:
        return "error", "not configured: %s" % configure_error
    if state != "active":
        return "ok", "%s (no processing)" % state
    if errors_recent and errors_recent >= received_recent:
        return "warn", "every recent camera frame was refused (%d); see the node's log" % errors_recent
    if not received_recent:
        return "warn", "active, but no camera frames arrive (check the image topic and its QoS)"
    rate = summary.get("rate_hz") or 0.0
    message = "active, %.1f Hz, p95 latency %s ms" % (rate, "-" if summary.get("latency_ms_p95") is None
                                                         else "%.0f" % summary["latency_ms_p95"])
    if errors_recent:
        return "warn", message + ", %d frames refused" % errors_recent
    return "ok", message
