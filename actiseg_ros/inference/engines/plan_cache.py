"""On-disk cache of built TensorRT engines (native plans and ONNX Runtime's TensorRT EP cache folders).

A TensorRT plan only loads under the TensorRT version and GPU that built it, and is only right for the
graph, precision and shape profile it was built with, so all of those make up the cache key. The key is
part of the file name (a changed key finds no plan and triggers a build) and is also stored beside the
plan, so a truncated, foreign or hand-copied plan is rebuilt instead of loaded.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

CACHE_ENV = "ACTISEG_ENGINE_CACHE"
KEY_FIELDS = ("graph_sha256", "tensorrt_version", "gpu", "precision", "profile")


def default_cache_dir() -> Path:
    """$ACTISEG_ENGINE_CACHE, else ~/.cache/actiseg_ros/engines (plans are per machine, not per model folder,
    so a read-only installed model folder still works)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "actiseg_ros" / "engines"


def plan_key_fields(graph_sha256: str, tensorrt_version: str, gpu: str, precision: str, profile: dict,
                    **extra) -> dict:
    """The facts a plan depends on, as a JSON-able dict. `profile`: {input: [min, opt, max] shapes};
    `extra` adds backend facts (e.g. the onnxruntime version for its TensorRT EP)."""
    if precision not in ("fp16", "fp32"):
        raise ValueError("precision must be 'fp16' or 'fp32', got %r" % precision)
    fields = {"graph_sha256": graph_sha256, "tensorrt_version": str(tensorrt_version), "gpu": str(gpu),
              "precision": precision,
              "profile": {name: [list(map(int, shape)) for shape in shapes]
                          for name, shapes in sorted(profile.items())}}
    fields.update({k: str(v) for k, v in sorted(extra.items())})
    return fields


def plan_key(fields: dict) -> str:
    """Short stable digest of the key fields (order-independent)."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]


def plan_path(cache_dir, graph_name: str, fields: dict, suffix: str = ".plan") -> Path:
    """cache_dir/<graph>-<precision>-<key><suffix>; the metadata sits beside it as .json."""
    return Path(cache_dir) / ("%s-%s-%s%s" % (graph_name, fields["precision"], plan_key(fields), suffix))


def meta_path(plan: Path) -> Path:
    return plan.with_name(plan.name + ".json")


def rebuild_reason(plan: Path, fields: dict) -> str | None:
    """None when the cached plan at `plan` can be loaded for `fields`, else why it must be (re)built."""
    plan = Path(plan)
    if not plan.exists():
        return "no cached engine at %s" % plan
    if plan.is_file() and plan.stat().st_size == 0:
        return "cached engine %s is empty" % plan
    meta = meta_path(plan)
    try:
        stored = json.loads(meta.read_text())
    except FileNotFoundError:
        return "cached engine %s has no metadata file %s" % (plan, meta.name)
    except (OSError, ValueError) as err:
        return "metadata %s is unreadable (%s)" % (meta, err)
    if not isinstance(stored, dict):
        return "metadata %s is not a JSON object" % meta
    changed = sorted(k for k in set(stored) | set(fields) if stored.get(k) != fields.get(k))
    if changed:
        return "cache key changed (%s)" % ", ".join("%s: %r -> %r" % (k, stored.get(k), fields.get(k)) for k in changed)
    return None


def stale_plans(cache_dir, graph_name: str, precision: str, keep: Path) -> list:
    """Earlier plans of the same graph and precision (other keys): safe to delete once `keep` is built."""
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return []
    keep = Path(keep)
    found = []
    for path in sorted(cache_dir.glob("%s-%s-*" % (graph_name, precision))):
        if path == keep or path == meta_path(keep):
            continue
        found.append(path)
    return found


def write_plan(plan: Path, data: bytes, fields: dict) -> None:
    """Write plan and metadata atomically (temp + rename): a build killed midway leaves no half plan."""
    plan = Path(plan)
    plan.parent.mkdir(parents=True, exist_ok=True)
    for path, payload in ((plan, bytes(data)), (meta_path(plan), (json.dumps(fields, indent=2) + "\n").encode())):
        tmp = path.with_name(path.name + ".tmp%d" % os.getpid())
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)


def write_meta(plan: Path, fields: dict) -> None:
    """Record the key of a cache folder that another library fills (ONNX Runtime's TensorRT EP)."""
    plan = Path(plan)
    plan.mkdir(parents=True, exist_ok=True)
    tmp = meta_path(plan).with_name(meta_path(plan).name + ".tmp%d" % os.getpid())
    tmp.write_text(json.dumps(fields, indent=2) + "\n")
    os.replace(tmp, meta_path(plan))
