"""Evaluation: the six ActionVOS metrics (metrics.py), per-class and failure-mode breakdowns (breakdown.py)
and the `actiseg eval` command (eval_cli.py)."""
