"""World frame, object poses and the affine maps of the synthetic generator.

Every scene lives in a fixed world of WORLD_W x WORLD_H units (the 854x480 frame of ActionVOS), so a scene
and its labels do not depend on the output resolution. Rendering at W x H scales the world by (W/854, H/480);
a different aspect ratio stretches the picture instead of cropping objects away.

Coordinates: x to the right, y down; angles in radians, positive turns +x towards +y (clockwise on screen).
Affine maps are 3x3 float64 matrices acting on column vectors (x, y, 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

WORLD_W, WORLD_H = 854.0, 480.0


@dataclass(frozen=True)
class Pose:
    """Where an object is: centre (x, y), rotation, per-axis scale (its local x is its main axis)."""

    x: float
    y: float
    angle: float = 0.0
    sx: float = 1.0
    sy: float = 1.0

    def moved(self, **changes) -> "Pose":
        return replace(self, **changes)

    def matrix(self) -> np.ndarray:
        """Local object units -> world units."""
        return translation(self.x, self.y) @ rotation(self.angle) @ scaling(self.sx, self.sy)

    def apply(self, local_xy) -> np.ndarray:
        """World position of a point given in the object's local frame (units, not fractions)."""
        x, y = local_xy
        c, s = math.cos(self.angle), math.sin(self.angle)
        return np.array([self.x + c * x * self.sx - s * y * self.sy, self.y + s * x * self.sx + c * y * self.sy])


def translation(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def rotation(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def scaling(sx: float, sy: float) -> np.ndarray:
    return np.array([[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]])


def world_to_image(width: int, height: int) -> np.ndarray:
    return scaling(width / WORLD_W, height / WORLD_H)


def transform_points(matrix: np.ndarray, points) -> np.ndarray:
    """(N, 2) points through a 3x3 affine map -> (N, 2) float64."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ matrix[:2, :2].T + matrix[:2, 2]


@dataclass(frozen=True)
class Camera:
    """Head motion of the wearer: a shift, a roll and a zoom about the world centre."""

    dx: float = 0.0
    dy: float = 0.0
    roll: float = 0.0
    zoom: float = 1.0

    def matrix(self) -> np.ndarray:
        cx, cy = WORLD_W / 2, WORLD_H / 2
        return (translation(cx + self.dx, cy + self.dy) @ rotation(self.roll)
                @ scaling(self.zoom, self.zoom) @ translation(-cx, -cy))


def smoothstep(u: float) -> float:
    u = min(max(u, 0.0), 1.0)
    return u * u * (3.0 - 2.0 * u)


def lerp(a, b, u: float):
    return a + (b - a) * u


def lerp_pose(a: Pose, b: Pose, u: float) -> Pose:
    """Blend two poses; the angle takes the short way round."""
    turn = (b.angle - a.angle + math.pi) % (2 * math.pi) - math.pi
    return Pose(lerp(a.x, b.x, u), lerp(a.y, b.y, u), a.angle + turn * u, lerp(a.sx, b.sx, u), lerp(a.sy, b.sy, u))


def keyframes(t: float, keys: list):
    """Piecewise eased interpolation through [(t_i, value_i)] (values: Pose, float or ndarray), held at ends."""
    if t <= keys[0][0]:
        return keys[0][1]
    for (t0, v0), (t1, v1) in zip(keys, keys[1:]):
        if t <= t1:
            u = smoothstep((t - t0) / (t1 - t0)) if t1 > t0 else 1.0
            return lerp_pose(v0, v1, u) if isinstance(v0, Pose) else lerp(v0, v1, u)
    return keys[-1][1]
