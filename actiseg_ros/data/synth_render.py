"""Drawing frames of a synthetic scene: textured lit background, objects, hands, shadows, camera motion, noise.

`SceneRenderer(scene, width, height)` renders a `FrameState` (synth_motion) into
- rgb: (H, W, 3) uint8 RGB frame,
- labels: (H, W) uint8, pixel = ActionVOS object id (1-based index of the object's name in the scene's
  sorted names, hands included), 0 = not annotated,
- object boxes (full, unoccluded extent of each drawn object, pixels) and hand boxes (palm and fingers only,
  pixels): what the hand-object boxes of the ActionVOS pseudo labels are built from.
With `labels_only=True` it skips colour (for computing labels cheaply at a reference resolution).

Sprites are drawn once per renderer and warped with one affine map per object per frame (OpenCV), into the
object's bounding rectangle only, so cost grows with object area, not object count times frame size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from actiseg_ros.data.synth_geometry import WORLD_H, WORLD_W, scaling, transform_points, translation, world_to_image
from actiseg_ros.data.synth_motion import FrameState, HandPose
from actiseg_ros.data.synth_scene import Scene
from actiseg_ros.data.synth_sprites import FIXTURE, SURFACE, Sprite, draw_sprite, rounded_rect
from actiseg_ros.data.taxonomy import HAND_NAMES

BG_PAD = 48.0  # world units of background drawn beyond the frame, room for camera motion
SHADOW_LIFT = {FIXTURE: 0.0, SURFACE: 3.0}  # elevation (world units) by layer; others default to items'


@dataclass
class Rendered:
    rgb: np.ndarray | None  # (H, W, 3) uint8, None when labels_only
    labels: np.ndarray  # (H, W) uint8 object ids
    object_boxes: dict  # name -> (x0, y0, x1, y1) inclusive pixel box of its full (unoccluded) mask
    hand_boxes: dict  # hand name -> (x0, y0, x1, y1) inclusive pixel box of palm and fingers


# --- hand geometry (world units) -----------------------------------------------------------------------

_HALF_TURN = np.linspace(0.0, math.pi, 6)
_RING = np.linspace(0.0, 2 * math.pi, 20, endpoint=False)
_FINGER_OFFSET = np.array([-0.33, -0.11, 0.11, 0.33])  # across the palm, index to little finger (right hand)
_FINGER_SPREAD = np.array([-0.14, -0.05, 0.04, 0.13])  # radians when the hand is open
_FINGER_LENGTH = np.array([0.8, 1.0, 0.95, 0.75])


def _capsules(p0: np.ndarray, p1: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Polygons (k, 12, 2) of stadiums around the segments p0[i]-p1[i] (k, 2) with radii r (k,)."""
    base = np.arctan2(p1[:, 1] - p0[:, 1], p1[:, 0] - p0[:, 0])[:, None]
    a1 = base - math.pi / 2 + _HALF_TURN
    a0 = base + math.pi / 2 + _HALF_TURN
    r = np.asarray(r, float)[:, None, None]
    end1 = p1[:, None, :] + r * np.stack([np.cos(a1), np.sin(a1)], -1)
    end0 = p0[:, None, :] + r * np.stack([np.cos(a0), np.sin(a0)], -1)
    return np.concatenate([end1, end0], 1)


@dataclass
class HandShape:
    arm: np.ndarray  # (4, 2) forearm polygon
    sleeve: np.ndarray  # (4, 2) sleeve polygon (drawn over the arm, not annotated)
    palm: np.ndarray  # (20, 2)
    fingers: np.ndarray  # (5, 12, 2) four fingers and the thumb
    creases: np.ndarray  # (4, 2, 2) finger lines drawn darker


def hand_shape(hand: str, pose: HandPose, elbow, scale: float) -> HandShape:
    """Polygons of one hand and forearm in world units; the fingers point away from the elbow."""
    palm = np.array([pose.x, pose.y])
    elbow = np.asarray(elbow, float)
    d = palm - elbow
    d = d / max(float(np.hypot(d[0], d[1])), 1e-6)
    n = np.array([-d[1], d[0]])
    s = scale
    length, width = 70 * s * (1 - 0.2 * pose.grip), 60 * s  # a fist is more compact than an open hand
    wrist = palm - d * length * 0.42
    arm = np.array([elbow + n * 44 * s, wrist + n * 27 * s, wrist - n * 27 * s, elbow - n * 44 * s])
    sleeve_end = elbow + (wrist - elbow) * 0.45
    sleeve = np.array([elbow + n * 54 * s, sleeve_end + n * 40 * s, sleeve_end - n * 40 * s, elbow - n * 54 * s])
    mirror = 1.0 if hand == HAND_NAMES[1] else -1.0  # the left hand is the right one mirrored
    bases = palm + d * length * 0.36 + np.outer(_FINGER_OFFSET * mirror * width, n)
    turn = _FINGER_SPREAD * (1 - pose.grip) * mirror
    dirs = np.outer(np.cos(turn), d) + np.outer(np.sin(turn), n)
    tips = bases + dirs * (46 * s * _FINGER_LENGTH * (1.0 - 0.7 * pose.grip))[:, None]
    thumb_base = palm + d * length * 0.02 - n * width * 0.42 * mirror
    thumb_turn = mirror * (0.95 - 0.55 * pose.grip)
    thumb_tip = thumb_base + (math.cos(thumb_turn) * d + math.sin(thumb_turn) * n) * 37 * s * (1 - 0.3 * pose.grip)
    fingers = _capsules(np.vstack([bases, thumb_base]), np.vstack([tips, thumb_tip]), [7.0 * s] * 4 + [8.5 * s])
    palm_poly = palm + np.outer(np.cos(_RING) * length / 2, d) + np.outer(np.sin(_RING) * width / 2, n)
    return HandShape(arm=arm, sleeve=sleeve, palm=palm_poly, fingers=fingers, creases=np.stack([bases, tips], 1))


# --- background ----------------------------------------------------------------------------------------

def _value_noise(rng: np.random.Generator, width: int, height: int, cells: float) -> np.ndarray:
    gw = max(int(cells), 1) + 3
    gh = max(int(cells * height / width), 1) + 3
    return cv2.resize(rng.random((gh, gw)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)


def render_background(scene: Scene, width: int, height: int) -> np.ndarray:
    """The static kitchen behind the objects, (H + 2p, W + 2p, 3) float32 RGB, p = BG_PAD scaled."""
    bg = scene.background
    rng = np.random.default_rng(bg.seed)
    sx, sy = width / WORLD_W, height / WORLD_H
    px, py = int(math.ceil(BG_PAD * sx)), int(math.ceil(BG_PAD * sy))
    cw, ch = width + 2 * px, height + 2 * py
    ys = ((np.arange(ch, dtype=np.float32) - py + 0.5) / sy)[:, None]  # world y of each row
    xs = ((np.arange(cw, dtype=np.float32) - px + 0.5) / sx)[None, :]
    detail = max(sx, sy)
    fine = _value_noise(rng, cw, ch, 60 * detail * WORLD_W / 854)
    coarse = _value_noise(rng, cw, ch, 6)
    base = np.asarray(bg.counter_colour, np.float32)
    if bg.counter_kind == "wood":
        grain = np.sin((ys / rng.uniform(9, 16) + coarse * 3 + 0.02 * xs * 0) * 2 * math.pi)
        planks = (np.floor(ys / rng.uniform(60, 110)) % 2) * 0.05
        field = 0.9 + 0.07 * grain + planks + 0.05 * (fine - 0.5)
    elif bg.counter_kind == "granite":
        speck = _value_noise(rng, cw, ch, 150 * detail)
        field = 0.95 + 0.25 * (speck > 0.72) - 0.3 * (speck < 0.25) + 0.08 * (fine - 0.5)
    elif bg.counter_kind == "marble":
        veins = np.abs(np.sin((xs * 0.004 + ys * 0.003 + coarse * 1.6 + 0.25 * fine) * math.pi))
        field = 1.0 - 0.2 * (veins < 0.04) - 0.06 * (veins < 0.12) + 0.04 * (fine - 0.5)
    elif bg.counter_kind == "steel":  # brushed stainless steel (kitchen_b): streaks along x, soft reflections
        streaks = _value_noise(rng, cw, max(ch // 8, 4), 4 * detail)
        streaks = cv2.resize(streaks, (cw, ch), interpolation=cv2.INTER_LINEAR)
        field = 0.9 + 0.12 * (streaks - 0.5) + 0.16 * (coarse - 0.5) + 0.03 * (fine - 0.5)
    elif bg.counter_kind == "tiles":  # small square tiles with dark grout (kitchen_b)
        size = rng.uniform(28, 48)
        grout = ((np.mod(xs, size) < 2.5) | (np.mod(ys, size) < 2.5)).astype(np.float32)
        per_tile = _value_noise(rng, cw, ch, WORLD_W / size)
        field = (0.93 + 0.1 * per_tile + 0.03 * (fine - 0.5)) * (1 - 0.45 * grout)
    else:
        field = 0.97 + 0.06 * (fine - 0.5) + 0.03 * (coarse - 0.5)
    canvas = base * field[..., None]
    # Wall with tiles above the counter.
    wall_rows = ys[:, 0] < bg.wall_h
    if wall_rows.any():
        tile = rng.uniform(38, 70)
        tiles = ((np.mod(xs, tile) < 2.2) | (np.mod(ys, tile * rng.uniform(0.5, 1.0)) < 2.2)).astype(np.float32)
        per_tile = _value_noise(rng, cw, ch, WORLD_W / tile)
        wall = np.asarray(bg.wall_colour, np.float32) * ((0.95 + 0.08 * per_tile) * (1 - 0.25 * tiles))[..., None]
        canvas[wall_rows] = np.broadcast_to(wall, canvas.shape)[wall_rows]
        edge = (ys[:, 0] >= bg.wall_h) & (ys[:, 0] < bg.wall_h + 8)
        canvas[edge] *= 0.7
    # Cabinet fronts below the counter edge.
    if bg.counter_edge < WORLD_H:
        rows = ys[:, 0] >= bg.counter_edge
        seams = (np.mod(xs + 37, rng.uniform(180, 260)) < 3).astype(np.float32)
        cab = np.asarray(bg.cabinet_colour, np.float32) * ((0.96 + 0.05 * fine) * (1 - 0.35 * seams))[..., None]
        canvas[rows] = np.broadcast_to(cab, canvas.shape)[rows]
        lip = (ys[:, 0] >= bg.counter_edge) & (ys[:, 0] < bg.counter_edge + 7)
        canvas[lip] = base * 1.12
    to_px = translation(px, py) @ world_to_image(width, height)
    for obj in scene.objects:  # what doors and drawers reveal when they open
        if obj.key in ("drawer", "fridge", "cupboard"):
            outline = rounded_rect(0, 0, obj.look.w * 0.98, obj.look.h * 0.96, 3)
            poly = transform_points(to_px @ obj.pose.matrix(), outline)
            inside = {"drawer": (32, 28, 26), "fridge": (226, 232, 236), "cupboard": (92, 70, 52)}[obj.key]
            cv2.fillPoly(canvas, [np.round(poly).astype(np.int32)], inside)
            if obj.key == "fridge":
                _fridge_inside(canvas, to_px, obj, rng)
    _clutter(canvas, to_px, bg, rng)
    return np.ascontiguousarray(canvas, np.float32)


def _fridge_inside(canvas, to_px, obj, rng) -> None:
    """Shelves and food packets (not annotated) behind a fridge door."""
    w, h = obj.look.w, obj.look.h
    m = to_px @ obj.pose.matrix()
    for i in range(1, 5):
        y = -h / 2 + i * h / 5
        line = transform_points(m, [(-w / 2, y), (w / 2, y)])
        thickness = max(int(round(3 * math.sqrt(abs(np.linalg.det(m[:2, :2]))))), 1)
        cv2.line(canvas, tuple(np.round(line[0]).astype(int)), tuple(np.round(line[1]).astype(int)), (170, 176, 180),
                 thickness)
        for _ in range(2):
            cx, cy = rng.uniform(-0.35, 0.35) * w, y - rng.uniform(10, 25)
            poly = transform_points(m, rounded_rect(cx, cy, rng.uniform(15, 35), rng.uniform(14, 26), 3))
            colour = tuple(float(c) for c in rng.uniform(40, 230, 3))
            cv2.fillPoly(canvas, [np.round(poly).astype(np.int32)], colour)


def _clutter(canvas, to_px, bg, rng) -> None:
    """Unannotated stains, crumbs and packets, so that not every blob on the counter is an object."""
    for _ in range(bg.clutter):
        x, y = rng.uniform(20, WORLD_W - 20), rng.uniform(bg.wall_h + 10, bg.counter_edge - 10)
        kind = rng.integers(3)
        if kind == 0:  # stain
            poly = rounded_rect(x, y, rng.uniform(20, 60), rng.uniform(10, 35), 12)
            colour = tuple(float(c) * 0.8 for c in bg.counter_colour)
        elif kind == 1:  # crumbs
            for _ in range(int(rng.integers(4, 10))):
                c = transform_points(to_px, [(x + rng.uniform(-20, 20), y + rng.uniform(-12, 12))])[0]
                cv2.circle(canvas, tuple(np.round(c).astype(int)), 1, (190, 160, 110), -1)
            continue
        else:  # packet
            poly = rounded_rect(x, y, rng.uniform(25, 55), rng.uniform(18, 40), 3)
            colour = tuple(float(c) for c in rng.uniform(30, 230, 3))
        pts = transform_points(to_px, poly)
        cv2.fillPoly(canvas, [np.round(pts).astype(np.int32)], colour, cv2.LINE_AA)


def lighting(scene: Scene, width: int, height: int) -> np.ndarray:
    """Per-pixel light gain (H, W, 3) float32: a directional gradient, vignetting and the white balance."""
    bg = scene.background
    ys = (np.arange(height, dtype=np.float32) + 0.5) / height - 0.5
    xs = (np.arange(width, dtype=np.float32) + 0.5) / width - 0.5
    X, Y = np.meshgrid(xs, ys)
    ramp = X * math.cos(bg.light_dir) + Y * math.sin(bg.light_dir)
    gain = 1.0 + 2 * bg.light_strength * ramp - 0.35 * (X ** 2 + Y ** 2)
    if bg.exposure != 1.0:  # only other domains set it: the kitchen's numbers stay as they were
        gain = gain * np.float32(bg.exposure)
    return (gain[..., None] * np.asarray(bg.tint, np.float32)).astype(np.float32)


# --- the renderer --------------------------------------------------------------------------------------

class SceneRenderer:
    def __init__(self, scene: Scene, width: int, height: int, labels_only: bool = False):
        if width < 8 or height < 8:
            raise ValueError("frame size %dx%d is too small (at least 8x8)" % (width, height))
        self.scene = scene
        self.width, self.height = int(width), int(height)
        self.labels_only = labels_only
        self.to_image = world_to_image(self.width, self.height)
        # Sprites a bit finer than the frame, so objects scaled up when lifted stay sharp.
        self.k = max(self.width / WORLD_W, self.height / WORLD_H) * 1.15
        self.ids = {name: i + 1 for i, name in enumerate(scene.object_names)}
        self._sprites: dict = {}
        self._background = None
        self._light = None
        self._noise = None

    # cached per scene and size
    def sprite(self, name: str) -> Sprite:
        if name not in self._sprites:
            sprite = draw_sprite(self.scene.object(name).look, self.k)
            data = np.dstack([sprite.rgb, sprite.alpha]) if not self.labels_only else sprite.alpha
            self._sprites[name] = (sprite, np.ascontiguousarray(data, np.float32))
        return self._sprites[name]

    def background(self) -> np.ndarray:
        if self._background is None:
            self._background = render_background(self.scene, self.width, self.height)
            self._light = lighting(self.scene, self.width, self.height)
            rng = np.random.default_rng([self.scene.background.seed, 5])
            self._noise = rng.normal(0, self.scene.background.noise_sigma,
                                     (self.height + 16, self.width + 16, 3)).astype(np.float32)
        return self._background

    def render(self, state: FrameState, frame: int = 0) -> Rendered:
        view = self.to_image @ state.camera.matrix()  # world -> pixels of this frame
        labels = np.zeros((self.height, self.width), np.uint8)
        layers = []
        for obj in self.scene.objects:
            layers.append((state.layers[obj.name], state.poses[obj.name].y, obj.name))
        layers.sort()
        warped = []  # (name, x0, y0, patch) in drawing order
        object_boxes = {}
        for _layer, _y, name in layers:
            item = self._warp(name, state, view)
            if item is None:
                continue
            warped.append(item)
            _name, x0, y0, patch = item
            alpha = patch[..., 3] if patch.ndim == 3 else patch
            solid = alpha >= 0.5
            labels[y0:y0 + solid.shape[0], x0:x0 + solid.shape[1]][solid] = self.ids[name]
            rows, cols = np.nonzero(solid)
            if rows.size:
                object_boxes[name] = (x0 + int(cols.min()), y0 + int(rows.min()), x0 + int(cols.max()),
                                      y0 + int(rows.max()))
        hands = {h: hand_shape(h, state.hands[h], self.scene.hands.elbow[h], self.scene.hands.scale)
                 for h in HAND_NAMES}
        # The leading hand (the one holding something, if any) is drawn last, on top.
        hand_order = sorted(HAND_NAMES, key=lambda h: h in state.contacts)
        hand_masks = {}
        hand_boxes = {}
        for h in hand_order:
            shape = hands[h]
            full, sleeve = self._hand_masks(shape, view)
            hand_masks[h] = (full, sleeve)
            labels[full >= 128] = self.ids[h]
            labels[sleeve >= 128] = 0
            hand_boxes[h] = _points_box(transform_points(view, np.vstack([shape.palm, shape.fingers.reshape(-1, 2)])),
                                        self.width, self.height)
        if self.labels_only:
            return Rendered(None, labels, object_boxes, hand_boxes)
        rgb = self._colour(state, view, warped, hands, hand_order, hand_masks, frame)
        return Rendered(rgb, labels, object_boxes, hand_boxes)

    def _warp(self, name: str, state: FrameState, view: np.ndarray):
        sprite, data = self.sprite(name)
        h, w = data.shape[:2]
        cx, cy = sprite.centre
        m = view @ state.poses[name].matrix() @ scaling(1 / sprite.k, 1 / sprite.k) @ translation(-cx, -cy)
        corners = transform_points(m, [(0, 0), (w, 0), (w, h), (0, h)])
        x0 = max(int(math.floor(corners[:, 0].min())), 0)
        y0 = max(int(math.floor(corners[:, 1].min())), 0)
        x1 = min(int(math.ceil(corners[:, 0].max())) + 1, self.width)
        y1 = min(int(math.ceil(corners[:, 1].max())) + 1, self.height)
        if x1 <= x0 or y1 <= y0:
            return None
        local = translation(-x0, -y0) @ m
        patch = cv2.warpAffine(data, local[:2], (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return name, x0, y0, patch

    def _hand_masks(self, shape: HandShape, view: np.ndarray):
        """uint8 (H, W) coverage masks: hand with forearm, and the sleeve over the forearm."""
        full = np.zeros((self.height, self.width), np.uint8)
        for poly in [shape.arm, shape.palm, *shape.fingers]:  # one call each: fillPoly XORs overlaps
            cv2.fillPoly(full, [_fixed(transform_points(view, poly))], 255, cv2.LINE_AA, 4)
        sleeve = np.zeros_like(full)
        cv2.fillPoly(sleeve, [_fixed(transform_points(view, shape.sleeve))], 255, cv2.LINE_AA, 4)
        return full, sleeve

    def _colour(self, state, view, warped, hands, hand_order, hand_masks, frame) -> np.ndarray:
        bg = self.background()
        scene_bg = self.scene.background
        sxw, syw = self.width / WORLD_W, self.height / WORLD_H
        px, py = int(math.ceil(BG_PAD * sxw)), int(math.ceil(BG_PAD * syw))
        bg_map = view @ np.linalg.inv(self.to_image) @ translation(-px, -py)
        canvas = cv2.warpAffine(bg, bg_map[:2], (self.width, self.height), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT)
        canvas *= self._shadow_gain(state, view, warped, hands, scene_bg.light_dir)[..., None]
        for name, x0, y0, patch in warped:
            roi = canvas[y0:y0 + patch.shape[0], x0:x0 + patch.shape[1]]
            roi *= 1.0 - patch[..., 3:4]
            roi += patch[..., :3]
        for stream in state.streams:
            self._stream(canvas, view, stream)
        for h in hand_order:
            self._paint_hand(canvas, view, hands[h], hand_masks[h])
        flicker = 1.0 + np.random.default_rng([self.scene.seed, 13, frame]).normal(0, 0.03)
        cv2.multiply(canvas, self._light, dst=canvas, scale=float(flicker))
        ox, oy = np.random.default_rng([self.scene.seed, 17, frame]).integers(0, 16, 2)
        cv2.add(canvas, np.ascontiguousarray(self._noise[oy:oy + self.height, ox:ox + self.width]), dst=canvas)
        np.clip(canvas, 0, 255, out=canvas)
        return canvas.astype(np.uint8)

    def _shadow_gain(self, state, view, warped, hands, light_dir: float) -> np.ndarray:
        """(H, W) float32 light gain < 1 where objects and hands shade the counter, away from the light."""
        sxw, syw = self.width / WORLD_W, self.height / WORLD_H
        shadow = np.zeros((self.height, self.width), np.uint8)
        direction = np.array([-math.cos(light_dir), -math.sin(light_dir)])
        for name, x0, y0, patch in warped:
            lift = 30.0 if name in state.lifted else SHADOW_LIFT.get(state.layers[name], 6.0)
            if lift <= 0:
                continue
            ox, oy = int(round(direction[0] * lift * sxw)), int(round(direction[1] * lift * syw))
            _max_into(shadow, (patch[..., 3] * 255).astype(np.uint8), x0 + ox, y0 + oy)
        offset = direction * 34 * np.array([sxw, syw])
        for shape in hands.values():
            for poly in [shape.arm, shape.palm, *shape.fingers]:
                cv2.fillPoly(shadow, [_fixed(transform_points(view, poly) + offset)], 255, cv2.LINE_8, 4)
        small = cv2.resize(shadow, (max(self.width // 4, 1), max(self.height // 4, 1)), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), 1.5)
        return _SHADOW_GAIN[cv2.resize(small, (self.width, self.height), interpolation=cv2.INTER_LINEAR)]

    def _paint_hand(self, canvas: np.ndarray, view: np.ndarray, shape: HandShape, masks) -> None:
        """Skin, finger lines and sleeve of one hand, composited inside the hand's bounding box only."""
        full, sleeve_mask = masks
        polys = {"arm": shape.arm, "sleeve": shape.sleeve, "palm": shape.palm}
        pixels = {k: transform_points(view, v) for k, v in polys.items()}
        fingers = [transform_points(view, f) for f in shape.fingers]
        every = np.vstack(list(pixels.values()) + fingers)
        x0, y0, x1, y1 = _points_box(every, self.width, self.height)
        if x1 < x0 or y1 < y0:
            return
        origin = np.array([x0, y0])
        skin = tuple(float(c) for c in self.scene.hands.skin)
        layer = np.zeros((y1 - y0 + 1, x1 - x0 + 1, 3), np.float32)
        cv2.fillPoly(layer, [_fixed(pixels["arm"] - origin)], tuple(c * 0.92 for c in skin), cv2.LINE_8, 4)
        for poly in [pixels["palm"], *fingers]:
            cv2.fillPoly(layer, [_fixed(poly - origin)], skin, cv2.LINE_8, 4)
        thickness = max(int(round(1.2 * max(self.width / WORLD_W, self.height / WORLD_H))), 1)
        for crease in shape.creases:
            cv2.polylines(layer, [_fixed(transform_points(view, crease) - origin)], False,
                          tuple(c * 0.78 for c in skin), thickness, cv2.LINE_AA, 4)
        cv2.fillPoly(layer, [_fixed(pixels["sleeve"] - origin)], tuple(float(c) for c in self.scene.hands.sleeve),
                     cv2.LINE_8, 4)
        a = np.maximum(full[y0:y1 + 1, x0:x1 + 1], sleeve_mask[y0:y1 + 1, x0:x1 + 1]).astype(np.float32)[..., None]
        a *= 1.0 / 255.0
        roi = canvas[y0:y1 + 1, x0:x1 + 1]
        roi *= 1.0 - a
        roi += layer * a

    def _stream(self, canvas: np.ndarray, view: np.ndarray, stream) -> None:
        pts = transform_points(view, [stream.start, stream.end])
        width = max(int(round(stream.width * self.width / WORLD_W)), 1)
        x0, y0, x1, y1 = _points_box(np.vstack([pts - width, pts + width]), self.width, self.height)
        if x1 <= x0 or y1 <= y0:
            return
        mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
        local = np.round(pts - (x0, y0)).astype(int)
        cv2.line(mask, tuple(local[0]), tuple(local[1]), 255, width, cv2.LINE_AA)
        a = mask.astype(np.float32)[..., None] * (0.65 / 255.0)
        roi = canvas[y0:y1 + 1, x0:x1 + 1]
        roi *= 1.0 - a
        roi += a * np.asarray(stream.colour, np.float32)


_SHADOW_GAIN = (1.0 - 0.42 * np.arange(256, dtype=np.float32) / 255.0).astype(np.float32)


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points) * 16).astype(np.int32)


def _points_box(points: np.ndarray, width: int, height: int):
    x0 = int(np.clip(np.floor(points[:, 0].min()), 0, width - 1))
    y0 = int(np.clip(np.floor(points[:, 1].min()), 0, height - 1))
    x1 = int(np.clip(np.ceil(points[:, 0].max()), 0, width - 1))
    y1 = int(np.clip(np.ceil(points[:, 1].max()), 0, height - 1))
    return x0, y0, x1, y1


def _max_into(target: np.ndarray, patch: np.ndarray, x0: int, y0: int) -> None:
    """target[y0:, x0:] = max(target, patch), clipped to the target's bounds."""
    h, w = patch.shape
    tx0, ty0 = max(x0, 0), max(y0, 0)
    tx1, ty1 = min(x0 + w, target.shape[1]), min(y0 + h, target.shape[0])
    if tx1 <= tx0 or ty1 <= ty0:
        return
    region = target[ty0:ty1, tx0:tx1]
    np.maximum(region, patch[ty0 - y0:ty1 - y0, tx0 - x0:tx1 - x0], out=region)
