"""Appearance of the synthetic kitchen objects: per-class shape, size, colours and texture, with variation.

Each object instance has a `Look` (sampled once per scene) and is drawn as a sprite: a premultiplied RGB
image plus an alpha matte, in the object's local frame (origin at the centre of its w x h box, local +x its
main axis: knife handle -> tip, bottle bottom -> cap). The renderer warps sprites into frames, so a sprite
is drawn once per scene and output scale.

Classes differ by silhouette (long thin blades and handles, rings, blobs, rounded boxes), colour family and
texture (wood grain, pores, checks, stripes, brushed metal, radial shading), so a small CNN can tell them
apart; instances of a class vary in size, proportions, colour and material, and some names select a shape
variant (taxonomy.SHAPE_OF_NAME: a cleaver has a rectangular blade, a red onion is purple).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from actiseg_ros.data.taxonomy import shape_of_name

FIXTURE, SURFACE, ITEM, ON_TOP, HELD = 0, 1, 2, 3, 5  # drawing layers, back to front
ITEM_SCALE = 1.12  # movable objects are drawn this much larger than the sizes below (close egocentric view)


@dataclass(frozen=True)
class ShapeSpec:
    size: tuple  # (w, h) in world units for the default shape
    layer: int
    grip: tuple  # where a hand holds it, as fractions of (w, h) in the local frame
    variants: dict  # shape variant -> (w, h) when it changes the size


SHAPES: dict = {
    "tap": ShapeSpec((96, 40), FIXTURE, (-0.28, -0.3), {}),
    "spoon": ShapeSpec((130, 26), ITEM, (-0.3, 0.0), {"ladle": (150, 42), "wooden": (140, 26)}),
    "plate": ShapeSpec((130, 112), SURFACE, (0.42, 0.0), {}),
    "knife": ShapeSpec((150, 24), ITEM, (-0.38, 0.0), {"cleaver": (140, 46), "chef": (178, 30)}),
    "pan": ShapeSpec((215, 120), SURFACE, (0.4, 0.0), {"castiron": (205, 118)}),
    "lid": ShapeSpec((110, 110), ITEM, (0.0, 0.0), {}),
    "bowl": ShapeSpec((110, 96), SURFACE, (0.4, 0.0), {}),
    "drawer": ShapeSpec((230, 72), FIXTURE, (0.0, -0.12), {}),
    "sponge": ShapeSpec((64, 40), ITEM, (0.0, 0.0), {"steel": (50, 42)}),
    "glass": ShapeSpec((48, 48), ITEM, (0.0, 0.0), {}),
    "fridge": ShapeSpec((165, 380), FIXTURE, (0.38, 0.05), {}),
    "cup": ShapeSpec((70, 52), ITEM, (0.05, 0.0), {"mug": (80, 58)}),
    "bottle": ShapeSpec((115, 36), ITEM, (-0.15, 0.0), {}),
    "onion": ShapeSpec((58, 56), ITEM, (0.0, 0.0), {}),
    "cloth": ShapeSpec((110, 76), ITEM, (0.0, 0.0), {}),
    "chopping-board": ShapeSpec((235, 145), SURFACE, (0.42, 0.0), {}),
    "pot": ShapeSpec((150, 118), SURFACE, (0.45, 0.0), {}),
    "potato": ShapeSpec((66, 50), ITEM, (0.0, 0.0), {"sweet": (88, 42)}),
    "bread": ShapeSpec((130, 68), ITEM, (0.0, 0.0), {"baguette": (185, 40)}),
    "carrot": ShapeSpec((120, 26), ITEM, (0.1, 0.0), {"small": (78, 20)}),
    "tomato": ShapeSpec((52, 52), ITEM, (0.0, 0.0), {"cherry": (32, 32), "plum": (60, 46)}),
    "sink": ShapeSpec((240, 155), FIXTURE, (0.0, 0.0), {}),
    "jug": ShapeSpec((95, 82), ITEM, (-0.05, 0.42), {"measuring": (100, 80)}),
    "peeler": ShapeSpec((95, 28), ITEM, (-0.25, 0.0), {}),
    # The held-out `kitchen_b` domain's classes (synth_domain.py).
    "cupboard": ShapeSpec((210, 150), FIXTURE, (0.38, 0.12), {}),
    "fork": ShapeSpec((132, 26), ITEM, (-0.3, 0.0), {"carving": (150, 26)}),
    "spatula": ShapeSpec((148, 42), ITEM, (-0.32, 0.0), {"slotted": (150, 46)}),
    "colander": ShapeSpec((138, 104), SURFACE, (0.42, 0.0), {}),
    "jar": ShapeSpec((56, 56), ITEM, (0.0, 0.0), {}),
    "kettle": ShapeSpec((112, 104), ITEM, (-0.05, 0.42), {"electric": (118, 100)}),
}

# Colour families per class (RGB); an instance picks one and jitters it.
PALETTES: dict = {
    "tap": [(196, 199, 204), (170, 172, 176), (205, 185, 120)],
    "spoon": [(192, 195, 200), (168, 170, 176)],
    "plate": [(236, 234, 226), (226, 232, 238), (214, 226, 206), (232, 214, 196), (200, 115, 80)],
    "knife": [(30, 30, 32), (118, 74, 42), (165, 38, 40), (40, 60, 110)],
    "pan": [(44, 44, 48), (60, 58, 56), (186, 106, 70), (160, 40, 40)],
    "lid": [(168, 184, 190), (150, 160, 166), (188, 190, 194)],
    "bowl": [(46, 96, 176), (70, 150, 90), (236, 232, 220), (230, 170, 40), (130, 80, 150)],
    "drawer": [(206, 170, 120), (236, 234, 228), (120, 124, 130), (50, 70, 100), (150, 105, 70)],
    "sponge": [(238, 205, 60), (236, 120, 160), (90, 150, 225)],
    "glass": [(205, 224, 230), (214, 230, 222)],
    "fridge": [(236, 236, 232), (192, 195, 198), (232, 222, 196), (60, 62, 66)],
    "cup": [(238, 238, 234), (200, 40, 45), (40, 90, 180), (236, 196, 40), (60, 140, 80), (35, 35, 38)],
    "bottle": [(60, 130, 70), (150, 90, 30), (190, 210, 215), (205, 182, 60), (80, 140, 210)],
    "onion": [(206, 152, 80), (140, 50, 92), (232, 226, 200)],
    "cloth": [(60, 110, 200), (230, 90, 90), (240, 200, 70), (120, 190, 120), (170, 110, 200)],
    "chopping-board": [(206, 160, 106), (150, 102, 62), (218, 188, 124), (234, 234, 226), (110, 176, 116),
                       (96, 146, 204)],
    "pot": [(186, 190, 196), (200, 60, 50), (40, 42, 46)],
    "potato": [(194, 152, 100), (176, 140, 96)],
    "bread": [(204, 142, 70), (180, 116, 56), (214, 170, 100)],
    "carrot": [(232, 122, 34), (236, 140, 40)],
    "tomato": [(212, 40, 34), (226, 70, 30)],
    "sink": [(196, 199, 204), (234, 234, 230)],
    "jug": [(236, 236, 230), (190, 214, 226), (200, 230, 210)],
    "peeler": [(230, 110, 40), (60, 150, 70), (30, 30, 32), (200, 40, 50)],
    "cupboard": [(120, 70, 50), (230, 226, 210), (70, 100, 90), (176, 60, 50), (60, 60, 66)],
    "fork": [(192, 195, 200), (176, 178, 184)],
    "spatula": [(30, 30, 32), (200, 60, 40), (60, 120, 190), (176, 124, 74)],
    "colander": [(200, 203, 208), (220, 60, 50), (90, 170, 80), (240, 190, 40)],
    "jar": [(150, 60, 110), (70, 120, 160), (120, 70, 150)],  # jam, blue and violet tinted glass
    "kettle": [(200, 203, 210), (30, 30, 34), (210, 50, 45), (236, 234, 228), (70, 130, 190)],
}

CONTENTS = [(196, 96, 40), (120, 70, 40), (206, 170, 60), (110, 150, 60), (170, 40, 30)]  # soups and sauces
DRINKS = [(90, 55, 35), (170, 110, 60), (240, 236, 226), (200, 70, 60)]  # coffee, tea, milk, juice


@dataclass(frozen=True)
class Look:
    """One object instance's appearance (world units)."""

    key: str
    shape: str  # variant: 'default' or one of SHAPES[key].variants / a name-selected style
    w: float
    h: float
    colour: tuple  # main RGB
    colour2: tuple  # secondary RGB (handle, content, stripes ...)
    material: int  # class-specific style switch (e.g. wood vs plastic board)
    seed: int  # texture seed


def _jitter(colour, rng, amount: float = 18.0) -> tuple:
    return tuple(float(np.clip(c + rng.uniform(-amount, amount), 0, 255)) for c in colour)


def sample_look(key: str, name: str, rng: np.random.Generator, camera: float = 1.0) -> Look:
    """Draw an instance look for a class; the name may select a shape variant. `camera` scales the size (a
    domain's camera height: > 1 a camera closer to the counter); 1.0 leaves every number as it was."""
    spec = SHAPES[key]
    shape = shape_of_name(name)
    base_w, base_h = spec.variants.get(shape, spec.size)
    scale = rng.uniform(0.85, 1.15) * ITEM_SCALE
    aspect = rng.uniform(0.92, 1.08)
    if spec.layer == FIXTURE:
        scale = rng.uniform(0.95, 1.05)
    palette = PALETTES[key]
    colour_index = int(rng.integers(len(palette)))
    if key == "onion" and shape in ("red", "white"):
        colour_index = 1 if shape == "red" else 2
    elif key == "onion":
        colour_index = 0
    colour = _jitter(palette[colour_index], rng)
    pool = CONTENTS if key in ("pan", "pot", "bowl") else DRINKS if key in ("cup", "glass") else \
        [(30, 30, 32), (118, 74, 42), (200, 200, 204), (60, 140, 80), (200, 60, 60), (240, 240, 236)]
    colour2 = _jitter(pool[int(rng.integers(len(pool)))], rng, 12.0)
    return Look(key=key, shape=shape, w=float(base_w * scale * aspect) * camera,
                h=float(base_h * scale / aspect) * camera,
                colour=colour, colour2=colour2, material=int(rng.integers(4)), seed=int(rng.integers(2 ** 31)))


def grip_point(look: Look) -> tuple:
    """Where a hand holds this object, in local units."""
    fx, fy = SHAPES[look.key].grip
    return fx * look.w, fy * look.h


# --- drawing canvas ----------------------------------------------------------------------------------

class Canvas:
    """A sprite under construction: premultiplied RGB (H, W, 3) float32 and alpha (H, W) float32 in [0, 1].

    Shapes are given in local world units; `k` is pixels per unit. Every `mask_*` returns an anti-aliased
    coverage mask (H, W) float32 that `paint`, `shade` or `erase` then apply.
    """

    SHIFT = 4  # cv2 fixed-point bits, for sub-pixel shape positions

    def __init__(self, w: float, h: float, k: float, pad: int = 2):
        self.k = k
        self.width = int(math.ceil(w * k)) + 2 * pad
        self.height = int(math.ceil(h * k)) + 2 * pad
        self.cx, self.cy = self.width / 2.0, self.height / 2.0
        self.rgb = np.zeros((self.height, self.width, 3), np.float32)
        self.alpha = np.zeros((self.height, self.width), np.float32)
        self._grid = None

    def _fixed(self, points) -> np.ndarray:
        pts = np.asarray(points, np.float64).reshape(-1, 2) * self.k + (self.cx, self.cy)
        return np.round(pts * (1 << self.SHIFT)).astype(np.int32)

    def _blank(self) -> np.ndarray:
        return np.zeros((self.height, self.width), np.uint8)

    def grid(self):
        """Local coordinates (units) of every pixel centre: X, Y each (H, W) float32."""
        if self._grid is None:
            xs = (np.arange(self.width, dtype=np.float32) + 0.5 - self.cx) / self.k
            ys = (np.arange(self.height, dtype=np.float32) + 0.5 - self.cy) / self.k
            self._grid = np.meshgrid(xs, ys)
        return self._grid

    def mask_poly(self, points) -> np.ndarray:
        m = self._blank()
        cv2.fillPoly(m, [self._fixed(points)], 255, cv2.LINE_AA, self.SHIFT)
        return m.astype(np.float32) / 255.0

    def mask_ellipse(self, centre, rx: float, ry: float, angle: float = 0.0, thickness: float = -1) -> np.ndarray:
        m = self._blank()
        c = tuple(int(v) for v in self._fixed([centre])[0])
        unit = self.k * (1 << self.SHIFT)
        axes = (max(int(round(rx * unit)), 1), max(int(round(ry * unit)), 1))
        width = -1 if thickness < 0 else max(int(round(thickness * self.k)), 1)
        cv2.ellipse(m, c, axes, math.degrees(angle), 0, 360, 255, width, cv2.LINE_AA, self.SHIFT)
        return m.astype(np.float32) / 255.0

    def mask_line(self, points, width: float, closed: bool = False) -> np.ndarray:
        m = self._blank()
        cv2.polylines(m, [self._fixed(points)], closed, 255, max(int(round(width * self.k)), 1), cv2.LINE_AA,
                      self.SHIFT)
        return m.astype(np.float32) / 255.0

    def mask_rrect(self, cx: float, cy: float, w: float, h: float, r: float) -> np.ndarray:
        return self.mask_poly(rounded_rect(cx, cy, w, h, r))

    def paint(self, mask: np.ndarray, colour, field: np.ndarray | None = None) -> None:
        """Lay colour (optionally times a texture field (H, W)) over the sprite with coverage `mask`."""
        colour = np.asarray(colour, np.float32)
        m = mask[..., None]
        if field is None:
            self.rgb += (colour - self.rgb) * m
        else:
            self.rgb += (colour * field[..., None] - self.rgb) * m
        self.alpha += (1.0 - self.alpha) * mask

    def shade(self, mask: np.ndarray, field) -> None:
        """Multiply the colour under `mask` by `field` (scalar or (H, W)) without changing coverage."""
        self.rgb *= (1.0 - mask + mask * field)[..., None]

    def erase(self, mask: np.ndarray) -> None:
        keep = 1.0 - mask
        self.rgb *= keep[..., None]
        self.alpha *= keep

    def noise(self, rng: np.random.Generator, cells: float) -> np.ndarray:
        """Smooth value noise in [0, 1], (H, W) float32, with about `cells` blobs across the sprite."""
        gw = max(int(math.ceil(cells)), 1) + 2
        gh = max(int(math.ceil(cells * self.height / max(self.width, 1))), 1) + 2
        small = rng.random((gh, gw)).astype(np.float32)
        return cv2.resize(small, (self.width, self.height), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def rounded_rect(cx: float, cy: float, w: float, h: float, r: float, steps: int = 6) -> np.ndarray:
    """Polygon (N, 2) of a rounded rectangle centred at (cx, cy)."""
    r = max(min(r, w / 2, h / 2), 0.0)
    pts = []
    for corner, (sx, sy) in enumerate(((1, 1), (-1, 1), (-1, -1), (1, -1))):
        ox, oy = cx + sx * (w / 2 - r), cy + sy * (h / 2 - r)
        start = corner * math.pi / 2
        for i in range(steps + 1):
            a = start + (math.pi / 2) * i / steps
            pts.append((ox + r * math.cos(a), oy + r * math.sin(a)))
    return np.array(pts)


def wood_grain(canvas: Canvas, rng: np.random.Generator, period: float, along_x: bool = True) -> np.ndarray:
    X, Y = canvas.grid()
    warp = canvas.noise(rng, 3) * 2.2 + canvas.noise(rng, 9) * 0.4
    coord = Y if along_x else X
    rings = np.sin((coord / period + warp) * 2 * math.pi)
    return (0.88 + 0.1 * rings + 0.06 * (canvas.noise(rng, 20) - 0.5)).astype(np.float32)


def speckle(canvas: Canvas, rng: np.random.Generator, amount: float, cells: float = 30) -> np.ndarray:
    return (1.0 + amount * (canvas.noise(rng, cells) - 0.5) * 2).astype(np.float32)


def radial(canvas: Canvas, centre, radius: float, inner: float, outer: float) -> np.ndarray:
    X, Y = canvas.grid()
    d = np.sqrt((X - centre[0]) ** 2 + (Y - centre[1]) ** 2) / max(radius, 1e-6)
    return (inner + (outer - inner) * np.clip(d, 0, 1)).astype(np.float32)


def linear(canvas: Canvas, axis: int, extent: float, start: float, end: float) -> np.ndarray:
    X, Y = canvas.grid()
    coord = (X if axis == 0 else Y) / max(extent, 1e-6) + 0.5
    return (start + (end - start) * np.clip(coord, 0, 1)).astype(np.float32)


def _darker(colour, f: float) -> tuple:
    return tuple(c * f for c in colour)


def _lighter(colour, f: float) -> tuple:
    return tuple(c + (255 - c) * f for c in colour)


# --- per-class drawings (local units; the box is [-w/2, w/2] x [-h/2, h/2]) ----------------------------

def _board(cv: Canvas, lk: Look, rng) -> None:
    w, h = lk.w, lk.h
    body = cv.mask_rrect(0, 0, w, h, 0.12 * h)
    is_wood = lk.colour[0] - lk.colour[2] > 60
    field = wood_grain(cv, rng, period=h / rng.uniform(5, 9)) if is_wood else speckle(cv, rng, 0.05, 40)
    cv.paint(body, lk.colour, field)
    cv.shade(cv.mask_rrect(0, 0, w, h, 0.12 * h) - cv.mask_rrect(0, 0, w - 0.06 * h, h - 0.06 * h, 0.1 * h), 0.8)
    for _ in range(int(rng.integers(3, 8))):  # knife scratches
        x0, y0 = rng.uniform(-0.4 * w, 0.3 * w), rng.uniform(-0.4 * h, 0.4 * h)
        ang = rng.uniform(-0.5, 0.5)
        length = rng.uniform(0.1, 0.3) * w
        cv.shade(cv.mask_line([(x0, y0), (x0 + length * math.cos(ang), y0 + length * math.sin(ang))], 1.2), 0.82)
    if lk.material % 2 == 0:  # hanging hole at one end
        cv.erase(cv.mask_ellipse((0.4 * w, 0), 0.045 * w, 0.045 * w))


def _plate(cv: Canvas, lk: Look, rng) -> None:
    rx, ry = lk.w / 2, lk.h / 2
    cv.paint(cv.mask_ellipse((0, 0), rx, ry), lk.colour, radial(cv, (0, 0), rx, 1.0, 0.9))
    cv.shade(cv.mask_ellipse((0, 0), 0.74 * rx, 0.74 * ry, thickness=0.06 * rx), 0.82)
    if lk.material == 0:
        cv.paint(cv.mask_ellipse((0, 0), 0.9 * rx, 0.9 * ry, thickness=0.05 * rx), lk.colour2)
    cv.shade(cv.mask_ellipse((-0.3 * rx, -0.35 * ry), 0.25 * rx, 0.12 * ry, -0.5), 1.12)


def _bowl(cv: Canvas, lk: Look, rng) -> None:
    rx, ry = lk.w / 2, lk.h / 2
    cv.paint(cv.mask_ellipse((0, 0), rx, ry), lk.colour, speckle(cv, rng, 0.03))
    inner = cv.mask_ellipse((0, 0.04 * ry), 0.8 * rx, 0.8 * ry)
    cv.shade(inner, linear(cv, 1, 1.6 * ry, 0.62, 0.92))
    if lk.material < 2:  # something in it
        cv.paint(cv.mask_ellipse((0, 0.1 * ry), 0.62 * rx, 0.58 * ry), lk.colour2, speckle(cv, rng, 0.18, 14))
    cv.shade(cv.mask_ellipse((0, 0), rx, ry, thickness=0.05 * rx), 1.15)


def _pan(cv: Canvas, lk: Look, rng) -> None:
    w, h = lk.w, lk.h
    r = h / 2
    x0 = -w / 2 + r
    handle = lk.colour2 if lk.material % 2 else _darker(lk.colour, 0.8)
    cv.paint(cv.mask_rrect(x0 + r + (w - 2 * r) / 2 - 0.02 * w, 0, w - 2 * r + 0.04 * w, 0.14 * h, 0.06 * h), handle)
    cv.paint(cv.mask_ellipse((x0, 0), r, r), lk.colour)
    inner_colour = _lighter(lk.colour, 0.12) if lk.shape != "castiron" else _darker(lk.colour, 0.7)
    cv.paint(cv.mask_ellipse((x0, 0), 0.86 * r, 0.86 * r), inner_colour, radial(cv, (x0, 0), r, 1.1, 0.85))
    if lk.material == 0:
        for _ in range(5):
            cx, cy = x0 + rng.uniform(-0.45, 0.45) * r, rng.uniform(-0.45, 0.45) * r
            cv.paint(cv.mask_ellipse((cx, cy), 0.16 * r, 0.12 * r, rng.uniform(0, 3)), lk.colour2)
    cv.shade(cv.mask_ellipse((x0 - 0.3 * r, -0.3 * r), 0.3 * r, 0.12 * r, -0.6), 1.25)


def _pot(cv: Canvas, lk: Look, rng) -> None:
    w, h = lk.w, lk.h
    r = h / 2
    for side in (-1, 1):
        cv.paint(cv.mask_rrect(side * (w / 2 - 0.08 * w), 0, 0.17 * w, 0.22 * h, 0.08 * h), _darker(lk.colour, 0.7))
    cv.paint(cv.mask_ellipse((0, 0), r, r), lk.colour, radial(cv, (0, 0), r, 1.15, 0.8))
    cv.paint(cv.mask_ellipse((0, 0), 0.84 * r, 0.84 * r), _darker(lk.colour, 0.75), radial(cv, (0, 0), r, 0.9, 1.1))
    if lk.material < 3:
        cv.paint(cv.mask_ellipse((0, 0), 0.74 * r, 0.74 * r), lk.colour2, speckle(cv, rng, 0.12, 10))


def _lid(cv: Canvas, lk: Look, rng) -> None:
    r = lk.w / 2
    cv.paint(cv.mask_ellipse((0, 0), r, lk.h / 2), lk.colour, radial(cv, (0, 0), r, 1.18, 0.92))
    cv.paint(cv.mask_ellipse((0, 0), r, lk.h / 2, thickness=0.09 * r), (205, 207, 212))
    cv.shade(cv.mask_ellipse((-0.1 * r, -0.35 * r), 0.45 * r, 0.1 * r, -0.3), 1.3)
    knob = (30, 30, 32) if lk.material % 2 else (210, 210, 214)
    cv.paint(cv.mask_ellipse((0, 0), 0.2 * r, 0.16 * r), knob)


def _cup(cv: Canvas, lk: Look, rng) -> None:
    w, h = lk.w, lk.h
    r = h / 2
    x0 = -w / 2 + r
    hr = (w - 2 * r) * (0.8 if lk.shape == "mug" else 0.6)
    cv.paint(cv.mask_ellipse((x0 + r + 0.2 * hr, 0), hr, 0.45 * r, thickness=0.22 * r), lk.colour)
    cv.paint(cv.mask_ellipse((x0, 0), r, r), lk.colour, radial(cv, (x0, 0), r, 1.05, 0.88))
    cv.paint(cv.mask_ellipse((x0, 0), 0.78 * r, 0.78 * r), lk.colour2, radial(cv, (x0, 0), r, 0.85, 1.05))


def _glass(cv: Canvas, lk: Look, rng) -> None:
    r = lk.w / 2
    cv.paint(cv.mask_ellipse((0, 0), r, lk.h / 2), lk.colour, radial(cv, (0, 0), r, 0.86, 1.0))
    cv.paint(cv.mask_ellipse((0, 0), r, lk.h / 2, thickness=0.12 * r), _lighter(lk.colour, 0.6))
    if lk.material < 2:
        cv.paint(cv.mask_ellipse((0, 0.05 * r), 0.7 * r, 0.7 * r), (160, 196, 214), speckle(cv, rng, 0.05))
    cv.paint(cv.mask_line([(-0.55 * r, -0.3 * r), (-0.3 * r, -0.6 * r)], 0.12 * r), (250, 252, 252))


def _bottle(cv: Canvas, lk: Look, rng) -> None:
    w, h = lk.w, lk.h
    body = cv.mask_rrect(-0.5 * w + 0.33 * w, 0, 0.66 * w, h, 0.18 * h)
    neck = cv.mask_poly([(0.12 * w, -0.5 * h), (0.27 * w, -0.2 * h), (0.45 * w, -0.2 * h), (0.45 * w, 0.2 * h),
                         (0.27 * w, 0.2 * h), (0.12 * w, 0.5 * h)])
    cv.paint(np.maximum(body, neck), lk.colour, linear(cv, 1, h, 1.12, 0.8))
    cv.paint(cv.mask_rrect(0.47 * w, 0, 0.07 * w, 0.48 * h, 0.05 * h), lk.colour2)
    if lk.material != 3:
        band = cv.mask_rrect(-0.18 * w, 0, 0.3 * w, h * 1.02, 0.02 * h) * body
        label = (240, 236, 224) if lk.material < 2 else (200, 50, 50)
        cv.paint(band, label)
        cv.shade(cv.mask_line([(-0.28 * w, -0.1 * h), (-0.08 * w, -0.1 * h)], 0.08 * h) * band, 0.5)
    cv.shade(cv.mask_line([(-0.45 * w, -0.26 * h), (0.1 * w, -0.26 * h)], 0.1 * h) * body, 1.3)


def _jug(cv: Canvas, lk: Look, rng) -> None:
    w, h = lk.w, lk.h  # local +x is up
    handle = cv.mask_ellipse((-0.08 * w, 0.36 * h), 0.26 * w, 0.14 * h, thickness=0.08 * h)
    body = cv.mask_rrect(-0.08 * w, -0.08 * h, 0.84 * w, 0.72 * h, 0.14 * h)
    spout = cv.mask_poly([(0.26 * w, -0.44 * h), (0.5 * w, -0.5 * h), (0.34 * w, -0.2 * h)])
    cv.paint(np.maximum(np.maximum(handle, body), spout), lk.colour, linear(cv, 1, h, 0.9, 1.1))
    if lk.shape == "measuring":
        for i in range(5):
            x = -0.35 * w + i * 0.13 * w
            cv.paint(cv.mask_line([(x, -0.42 * h), (x, -0.3 * h)], 1.6), (200, 40, 40))
    cv.shade(cv.mask_line([(-0.4 * w, -0.32 * h), (0.2 * w, -0.32 * h)], 0.07 * h), 1.2)


def _knife(cv: Canvas, lk: Look, rng) -> None:
    w, h = lk.w, lk.h
    steel = (200, 203, 210)
    if lk.shape == "cleaver":
        blade = cv.mask_rrect(0.17 * w, 0, 0.66 * w, h, 0.06 * h)
    else:
        blade = cv.mask_poly([(-0.17 * w, -0.42 * h), (0.5 * w, -0.28 * h), (0.36 * w, 0.16 * h),
                              (0.12 * w, 0.42 * h), (-0.17 * w, 0.42 * h)])
    cv.paint(blade, steel, linear(cv, 1, h, 0.8, 1.12))
    cv.shade(cv.mask_line([(-0.15 * w, 0.3 * h), (0.3 * w, 0.3 * h)], 0.08 * h) * blade, 1.12)
    if lk.shape == "cleaver":
        cv.erase(cv.mask_ellipse((0.4 * w, -0.25 * h), 0.06 * h, 0.06 * h))
    hh = 0.5 * h if lk.shape != "cleaver" else 0.36 * h
    cv.paint(cv.mask_rrect(-0.335 * w, 0, 0.33 * w, hh, 0.4 * hh), lk.colour, speckle(cv, rng, 0.06))
    for fx in (-0.44, -0.34, -0.24):
        cv.paint(cv.mask_ellipse((fx * w, 0), 0.06 * hh, 0.06 * hh), (215, 215, 220))


def _spoon(cv: Canvas, lk: Look, rng) -> None:
    w, h = lk.w, lk.h
    colour = lk.colour if lk.shape != "wooden" else (176, 124, 74)
    field = wood_grain(cv, rng, h / 3) if lk.shape == "wooden" else linear(cv, 1, h, 1.1, 0.85)
    head_r = 0.5 * h if lk.shape == "ladle" else 0.17 * w
    head_x = 0.5 * w - head_r
    thick = 0.22 * h if lk.shape == "ladle" else 0.3 * h
    cv.paint(cv.mask_line([(-0.47 * w, 0), (head_x, 0)], thick), colour, field)
    cv.paint(cv.mask_ellipse((head_x, 0), head_r, 0.5 * h), colour, field)
    cv.shade(cv.mask_ellipse((head_x, 0.05 * h), 0.7 * head_r, 0.36 * h), 0.8)


def _peeler(cv: Canvas, lk: Look, rng) -> None:
    w, h = lk.w, lk.h
    cv.paint(cv.mask_rrect(-0.2 * w, 0, 0.6 * w, 0.62 * h, 0.3 * h), lk.colour)
    for i in range(5):
        x = -0.42 * w + i * 0.09 * w
        cv.shade(cv.mask_line([(x, -0.25 * h), (x, 0.25 * h)], 0.05 * h), 0.7)
    frame = cv.mask_rrect(0.3 * w, 0, 0.4 * w, h, 0.2 * h)
    cv.paint(frame, (205, 207, 212))
    cv.erase(cv.mask_rrect(0.31 * w, 0, 0.26 * w, 0.6 * h, 0.1 * h))
    cv.paint(cv.mask_line([(0.2 * w, 0), (0.44 * w, 0)], 0.16 * h), (175, 178, 184))


def _sponge(cv: Canvas, lk: Look, rng) -> None:
    w, h = lk.w, lk.h
    if lk.shape == "steel":
        body = cv.mask_ellipse((0, 0), w / 2, h / 2)
        cv.paint(body, (185, 188, 192), speckle(cv, rng, 0.35, 18))
        return
    cv.paint(cv.mask_rrect(0, 0, w, h, 0.12 * h), lk.colour, speckle(cv, rng, 0.08))
    pores = (cv.noise(rng, 22) > 0.72).astype(np.float32)
    cv.shade(pores * cv.mask_rrect(0, 0.15 * h, w, 0.7 * h, 0.1 * h), 0.7)
    top = cv.mask_rrect(0, -0.35 * h, w, 0.3 * h, 0.1 * h)
    pad = (50, 130, 70) if lk.material % 2 == 0 else (40, 60, 120)
    cv.paint(top, pad, speckle(cv, rng, 0.25, 40))


def _cloth(cv: Canvas, lk: Look, rng) -> None:
    w, h = lk.w, lk.h
    outline = rounded_rect(0, 0, w * 0.96, h * 0.96, 0.1 * h, steps=4)
    outline = outline + rng.normal(0, 0.012 * h, outline.shape)
    body = cv.mask_poly(outline)
    X, Y = cv.grid()
    if lk.shape == "striped" or lk.material == 0:
        field = np.where(np.sin(Y / h * 2 * math.pi * 3) > 0.55, 0.55, 1.0).astype(np.float32)
        cv.paint(body, (236, 234, 226))
        cv.paint(body * (field < 1), lk.colour)
    elif lk.material == 1:
        check = ((np.floor(X / (0.12 * w)) + np.floor(Y / (0.12 * w))) % 2).astype(np.float32)
        cv.paint(body, (238, 236, 230))
        cv.paint(body * check, lk.colour)
    else:
        cv.paint(body, lk.colour, speckle(cv, rng, 0.1, 50))
    wrinkle = 0.9 + 0.1 * np.sin((X * 0.6 + Y) / (0.2 * h) + cv.noise(rng, 3) * 4)
    cv.shade(body, wrinkle.astype(np.float32))


def _onion(cv: Canvas, lk: Look, rng) -> None:
    w, h = lk.w, lk.h
    angles = np.linspace(0, 2 * math.pi, 40, endpoint=False)
    pts = np.stack([0.5 * w * np.cos(angles), 0.46 * h * np.sin(angles) + 0.04 * h], 1)
    pts = np.vstack([pts[pts[:, 1] > -0.2 * h], [(0.0, -0.5 * h)]])
    order = np.argsort(np.arctan2(pts[:, 1] - 0.04 * h, pts[:, 0]))
    cv.paint(cv.mask_poly(pts[order]), lk.colour, radial(cv, (-0.1 * w, -0.05 * h), 0.55 * w, 1.15, 0.8))
    for fx in (-0.3, -0.12, 0.1, 0.28):
        curve = [(0, -0.45 * h), (fx * w * 1.1, -0.1 * h), (fx * w, 0.3 * h), (0, 0.48 * h)]
        cv.shade(cv.mask_line(curve, 0.03 * w), 0.72)
    for i in range(4):
        cv.paint(cv.mask_line([(0, 0.48 * h), ((i - 1.5) * 0.05 * w, 0.56 * h)], 0.02 * w), (210, 200, 170))


def _carrot(cv: Canvas, lk: Look, rng) -> None:
    w, h = lk.w, lk.h
    top_x = -0.5 * w + 0.22 * w
    for i in range(4):
        ang = (i - 1.5) * 0.35
        cv.paint(cv.mask_line([(top_x, 0), (top_x - 0.24 * w * math.cos(ang), 0.45 * h * math.sin(ang) * 2)],
                              0.12 * h), (60, 150, 50))
    body = np.maximum(cv.mask_poly([(top_x, -0.45 * h), (0.5 * w, 0.0), (top_x, 0.45 * h)]),
                      cv.mask_ellipse((top_x, 0), 0.07 * w, 0.45 * h))
    cv.paint(body, lk.colour, linear(cv, 1, h, 1.12, 0.82))
    for i in range(6):
        x = top_x + (i + 1) * 0.1 * w
        cv.shade(cv.mask_line([(x, -0.3 * h), (x + 0.02 * w, -0.05 * h)], 0.05 * h) * body, 0.75)


def _tomato(cv: Canvas, lk: Look, rng) -> None:
    rx, ry = lk.w / 2, lk.h / 2
    cv.paint(cv.mask_ellipse((0, 0), rx, ry), lk.colour, radial(cv, (-0.25 * rx, -0.25 * ry), 1.2 * rx, 1.15, 0.75))
    star = []
    for i in range(10):
        a = i * math.pi / 5
        rr = 0.42 * min(rx, ry) if i % 2 == 0 else 0.12 * min(rx, ry)
        star.append((rr * math.cos(a), rr * math.sin(a)))
    cv.paint(cv.mask_poly(star), (50, 130, 40))
    cv.shade(cv.mask_ellipse((-0.4 * rx, -0.45 * ry), 0.2 * rx, 0.1 * ry, -0.7), 1.5)


def _potato(cv: Canvas, lk: Look, rng) -> None:
    w, h = lk.w, lk.h
    angles = np.linspace(0, 2 * math.pi, 36, endpoint=False)
    wobble = 1 + 0.05 * np.sin(angles * 3 + rng.uniform(0, 6)) + 0.04 * np.sin(angles * 5 + rng.uniform(0, 6))
    pts = np.stack([0.48 * w * wobble * np.cos(angles), 0.46 * h * wobble * np.sin(angles)], 1)
    colour = (158, 78, 72) if lk.shape == "sweet" else lk.colour
    body = cv.mask_poly(pts)
    cv.paint(body, colour, speckle(cv, rng, 0.12, 16) * radial(cv, (0, 0), 0.5 * w, 1.05, 0.85))
    for _ in range(5):
        cv.paint(cv.mask_ellipse((rng.uniform(-0.3, 0.3) * w, rng.uniform(-0.3, 0.3) * h), 0.03 * w, 0.02 * w),
                 _darker(colour, 0.55))


def _bread(cv: Canvas, lk: Look, rng) -> None:
    w, h = lk.w, lk.h
    cv.paint(cv.mask_rrect(0, 0, w, h, 0.45 * h), lk.colour, radial(cv, (0, 0), 0.55 * w, 1.12, 0.75))
    cuts = 3 if lk.shape != "baguette" else 5
    for i in range(cuts):
        x = (i - (cuts - 1) / 2) * w / (cuts + 0.5)
        cv.paint(cv.mask_ellipse((x, 0), 0.05 * w, 0.3 * h, 0.5), _lighter(lk.colour, 0.35))


def _drawer(cv: Canvas, lk: Look, rng) -> None:
    w, h = lk.w, lk.h
    is_wood = lk.colour[0] - lk.colour[2] > 60
    field = wood_grain(cv, rng, h / 4) if is_wood else speckle(cv, rng, 0.03, 40)
    cv.paint(cv.mask_rrect(0, 0, w, h, 0.05 * h), lk.colour, field)
    frame = cv.mask_rrect(0, 0, w, h, 0.05 * h) - cv.mask_rrect(0, 0, w - 0.12 * h, h - 0.12 * h, 0.04 * h)
    cv.shade(np.clip(frame, 0, 1), 0.78)
    if lk.material % 2 == 0:
        cv.paint(cv.mask_line([(-0.18 * w, -0.12 * h), (0.18 * w, -0.12 * h)], 0.1 * h), (200, 202, 208))
    else:
        for side in (-1, 1):
            cv.paint(cv.mask_ellipse((side * 0.1 * w, -0.12 * h), 0.06 * h, 0.06 * h), (190, 192, 198))


def _fridge(cv: Canvas, lk: Look, rng) -> None:
    w, h = lk.w, lk.h
    brushed = speckle(cv, rng, 0.04, 60) * linear(cv, 0, w, 0.94, 1.04)
    cv.paint(cv.mask_rrect(0, 0, w, h, 0.03 * w), lk.colour, brushed)
    split = -0.5 * h + (0.3 + 0.05 * lk.material) * h
    cv.shade(cv.mask_line([(-0.5 * w, split), (0.5 * w, split)], 2.5), 0.6)
    handle = (90, 92, 96) if lk.colour[0] > 120 else (200, 200, 204)
    cv.paint(cv.mask_line([(0.38 * w, split - 0.12 * h), (0.38 * w, split - 0.02 * h)], 0.05 * w), handle)
    cv.paint(cv.mask_line([(0.38 * w, split + 0.04 * h), (0.38 * w, split + 0.26 * h)], 0.05 * w), handle)


def _sink(cv: Canvas, lk: Look, rng) -> None:
    w, h = lk.w, lk.h
    cv.paint(cv.mask_rrect(0, 0, w, h, 0.16 * h), lk.colour, speckle(cv, rng, 0.05, 50))
    basin = cv.mask_rrect(0, 0.02 * h, 0.84 * w, 0.78 * h, 0.14 * h)
    cv.shade(basin, radial(cv, (0, 0.05 * h), 0.45 * w, 0.72, 0.58))
    cv.paint(cv.mask_ellipse((0.1 * w, 0.1 * h), 0.07 * h, 0.07 * h), (70, 72, 76))
    cv.shade(cv.mask_line([(0.1 * w - 0.05 * h, 0.1 * h), (0.1 * w + 0.05 * h, 0.1 * h)], 1.5), 1.8)


def _tap(cv: Canvas, lk: Look, rng) -> None:
    """A mixer tap from above: a square base plate, a lever across it and a thick squared-off spout."""
    w, h = lk.w, lk.h
    base_x = -0.5 * w + 0.22 * w
    chrome = linear(cv, 1, h, 1.25, 0.75)
    cv.paint(cv.mask_rrect(base_x, 0, 0.4 * w, 0.9 * h, 0.12 * h), _darker(lk.colour, 0.85), chrome)
    cv.paint(cv.mask_rrect(0.12 * w, 0, 0.72 * w, 0.42 * h, 0.06 * h), lk.colour, chrome)
    cv.paint(cv.mask_rrect(0.44 * w, 0, 0.1 * w, 0.5 * h, 0.04 * h), _darker(lk.colour, 0.55))
    cv.shade(cv.mask_line([(-0.15 * w, -0.1 * h), (0.38 * w, -0.1 * h)], 0.08 * h), 1.35)
    cv.paint(cv.mask_line([(base_x, 0.3 * h), (base_x, -0.46 * h)], 0.16 * h), _lighter(lk.colour, 0.35))


def _cupboard(cv: Canvas, lk: Look, rng) -> None:
    """A wall cupboard door seen from below: panelled front, a handle near the opening edge (local +x)."""
    w, h = lk.w, lk.h
    is_wood = lk.colour[0] - lk.colour[2] > 50
    field = wood_grain(cv, rng, w / 5, along_x=False) if is_wood else speckle(cv, rng, 0.03, 40)
    cv.paint(cv.mask_rrect(0, 0, w, h, 0.03 * h), lk.colour, field)
    panel = cv.mask_rrect(0, 0, 0.78 * w, 0.74 * h, 0.03 * h) - cv.mask_rrect(0, 0, 0.72 * w, 0.68 * h, 0.03 * h)
    cv.shade(np.clip(panel, 0, 1), 0.72)
    cv.shade(cv.mask_line([(-0.5 * w, 0.5 * h), (0.5 * w, 0.5 * h)], 0.06 * h), 0.6)  # the shadowed bottom edge
    cv.paint(cv.mask_line([(0.42 * w, -0.05 * h), (0.42 * w, 0.3 * h)], 0.035 * w), (205, 207, 212))


def _fork(cv: Canvas, lk: Look, rng) -> None:
    w, h = lk.w, lk.h
    steel = lk.colour
    field = linear(cv, 1, h, 1.12, 0.82)
    cv.paint(cv.mask_rrect(-0.22 * w, 0, 0.56 * w, 0.3 * h, 0.15 * h), steel, field)  # handle
    cv.paint(cv.mask_line([(0.05 * w, 0), (0.2 * w, 0)], 0.22 * h), steel, field)  # neck
    cv.paint(cv.mask_rrect(0.24 * w, 0, 0.1 * w, 0.9 * h, 0.2 * h), steel, field)  # base of the tines
    tines = 2 if lk.shape == "carving" else 4
    for i in range(tines):
        y = (i - (tines - 1) / 2) * (0.78 * h / max(tines - 1, 1))
        cv.paint(cv.mask_line([(0.26 * w, y), (0.5 * w, y)], 0.1 * h), steel, field)
    if lk.material % 2:  # a coloured handle grip
        cv.paint(cv.mask_rrect(-0.3 * w, 0, 0.38 * w, 0.34 * h, 0.17 * h), lk.colour2)


def _spatula(cv: Canvas, lk: Look, rng) -> None:
    w, h = lk.w, lk.h
    is_wood = lk.colour[0] - lk.colour[2] > 60
    field = wood_grain(cv, rng, h / 3) if is_wood else speckle(cv, rng, 0.05)
    cv.paint(cv.mask_line([(-0.48 * w, 0), (0.1 * w, 0)], 0.24 * h), lk.colour, field)  # handle
    head = cv.mask_poly([(0.08 * w, -0.18 * h), (0.5 * w, -0.5 * h), (0.5 * w, 0.5 * h), (0.08 * w, 0.18 * h)])
    head_colour = lk.colour if is_wood or lk.material < 2 else (196, 199, 204)
    cv.paint(head, head_colour, linear(cv, 0, w, 0.9, 1.1))
    if lk.shape == "slotted" or lk.material % 2:
        for i in range(3):
            y = (i - 1) * 0.28 * h
            cv.erase(cv.mask_line([(0.22 * w, y * 0.6), (0.44 * w, y)], 0.08 * h) * head)
    cv.erase(cv.mask_ellipse((-0.4 * w, 0), 0.04 * h, 0.04 * h))  # hanging hole


def _colander(cv: Canvas, lk: Look, rng) -> None:
    w, h = lk.w, lk.h
    r = h / 2
    for side in (-1, 1):  # two handles
        cv.paint(cv.mask_rrect(side * (w / 2 - 0.07 * w), 0, 0.15 * w, 0.2 * h, 0.08 * h), _darker(lk.colour, 0.8))
    cv.paint(cv.mask_ellipse((0, 0), r, r), lk.colour, radial(cv, (0, 0), r, 1.12, 0.85))
    cv.shade(cv.mask_ellipse((0, 0), 0.8 * r, 0.8 * r), radial(cv, (0, 0), 0.8 * r, 0.7, 0.95))
    X, Y = cv.grid()
    holes = ((np.mod(X, 0.13 * r) < 0.045 * r) & (np.mod(Y, 0.13 * r) < 0.045 * r)).astype(np.float32)
    cv.shade(holes * cv.mask_ellipse((0, 0), 0.74 * r, 0.74 * r), 0.35)
    cv.shade(cv.mask_ellipse((0, 0), r, r, thickness=0.06 * r), 1.15)


def _jar(cv: Canvas, lk: Look, rng) -> None:
    """A jar from above: a tinted glass rim around its contents, or its screw lid (material 2, 3)."""
    r = lk.w / 2
    cv.paint(cv.mask_ellipse((0, 0), r, lk.h / 2), _lighter(lk.colour, 0.35), radial(cv, (0, 0), r, 0.85, 1.05))
    if lk.material < 2:
        cv.paint(cv.mask_ellipse((0, 0), 0.76 * r, 0.76 * r), lk.colour, speckle(cv, rng, 0.2, 10))
    else:
        cv.paint(cv.mask_ellipse((0, 0), 0.8 * r, 0.8 * r), _darker(lk.colour, 0.8),
                 radial(cv, (0, 0), 0.8 * r, 1.15, 0.8))
        for i in range(12):
            a = i * math.pi / 6
            cv.shade(cv.mask_line([(0.68 * r * math.cos(a), 0.68 * r * math.sin(a)),
                                   (0.8 * r * math.cos(a), 0.8 * r * math.sin(a))], 0.05 * r), 0.7)
    cv.paint(cv.mask_line([(-0.6 * r, -0.25 * r), (-0.35 * r, -0.6 * r)], 0.1 * r), (250, 252, 252))


def _kettle(cv: Canvas, lk: Look, rng) -> None:
    """A kettle from the side, its local +x up (like the jug): body, lid knob, handle arc and spout."""
    w, h = lk.w, lk.h
    body = cv.mask_poly([(-0.5 * w, -0.36 * h), (0.22 * w, -0.28 * h), (0.22 * w, 0.28 * h), (-0.5 * w, 0.36 * h)])
    handle = cv.mask_ellipse((0.18 * w, 0.0), 0.3 * w, 0.3 * h, thickness=0.09 * h)
    handle *= (cv.grid()[0] > 0.24 * w)
    spout = cv.mask_poly([(-0.2 * w, -0.3 * h), (0.12 * w, -0.5 * h), (0.2 * w, -0.44 * h), (-0.05 * w, -0.26 * h)])
    cv.paint(np.maximum(np.maximum(body, handle), spout), lk.colour, linear(cv, 1, h, 1.15, 0.8))
    cv.paint(cv.mask_rrect(0.26 * w, 0, 0.08 * w, 0.3 * h, 0.03 * h), _darker(lk.colour, 0.6))  # lid knob
    base = (30, 30, 34) if lk.shape == "electric" or lk.material % 2 else _darker(lk.colour, 0.75)
    cv.paint(cv.mask_rrect(-0.46 * w, 0, 0.08 * w, 0.74 * h, 0.03 * h), base)
    if lk.shape == "electric":
        cv.paint(cv.mask_rrect(-0.15 * w, 0.12 * h, 0.3 * w, 0.06 * h, 0.02 * h), (120, 170, 220))  # water window
    cv.shade(cv.mask_line([(-0.4 * w, -0.2 * h), (0.1 * w, -0.18 * h)], 0.06 * h) * body, 1.3)


DRAW = {
    "chopping-board": _board, "plate": _plate, "bowl": _bowl, "pan": _pan, "pot": _pot, "lid": _lid,
    "cup": _cup, "glass": _glass, "bottle": _bottle, "jug": _jug, "knife": _knife, "spoon": _spoon,
    "peeler": _peeler, "sponge": _sponge, "cloth": _cloth, "onion": _onion, "carrot": _carrot,
    "tomato": _tomato, "potato": _potato, "bread": _bread, "drawer": _drawer, "fridge": _fridge,
    "sink": _sink, "tap": _tap,
    "cupboard": _cupboard, "fork": _fork, "spatula": _spatula, "colander": _colander, "jar": _jar,
    "kettle": _kettle,
}


@dataclass
class Sprite:
    rgb: np.ndarray  # (h, w, 3) float32, premultiplied by alpha
    alpha: np.ndarray  # (h, w) float32 in [0, 1]
    k: float  # pixels per world unit

    @property
    def centre(self) -> tuple:
        return self.alpha.shape[1] / 2.0, self.alpha.shape[0] / 2.0


def draw_sprite(look: Look, k: float) -> Sprite:
    """Render one object instance at `k` pixels per world unit; the same look and k give the same pixels."""
    canvas = Canvas(look.w, look.h, k)
    DRAW[look.key](canvas, look, np.random.default_rng(look.seed))
    alpha = np.clip(canvas.alpha, 0, 1)
    # Highlights and textures may push a colour past white; keep it premultiplied (rgb <= 255 * alpha).
    rgb = np.minimum(np.clip(canvas.rgb, 0, None), 255.0 * alpha[..., None])
    return Sprite(rgb=rgb, alpha=alpha, k=k)
