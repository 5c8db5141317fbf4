"""Motion scripts: where every object and hand is at time t of an action, and which hand touches what.

An action runs over normalised time t in [0, 1]: approach (t < 0.2, the hand goes to what it will use),
act (0.2 <= t <= 0.8, the verb's characteristic motion; the annotated sparse frames lie here) and return
(t > 0.8, everything goes back to its resting pose and the hands to their rest places). So consecutive
actions of a scene join into one continuous video.

The hand motion matches the verb: cut = back-and-forth knife strokes over the food while the other hand
holds it; pick = the hand goes to the object and lifts it towards the camera; place = carry and set down on
the support (or next to it); open/close = the hand pulls/pushes a drawer front or swings a fridge door
about its hinge; wash = one hand holds the item over the sink while the other scrubs it in circles;
wipe = zig-zag strokes over a surface; pour = carry a bottle over the target and tilt it, with a liquid
stream; stir = circles inside the pot; peel = repeated one-way strokes along the food; shake = fast up-down oscillation;
turn on/off = the hand on the tap lever while the water starts/stops; move = a flat hand pushes it aside.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from actiseg_ros.data.synth_geometry import Camera, Pose, keyframes, lerp, lerp_pose, smoothstep
from actiseg_ros.data.synth_scene import Action, Scene, footprint
from actiseg_ros.data.synth_sprites import HELD, ON_TOP, grip_point
from actiseg_ros.data.taxonomy import HAND_NAMES

APPROACH_END, ACT_END = 0.2, 0.8
SIDE_GRIP = frozenset({"bottle", "jug", "cup", "glass", "onion", "tomato", "potato", "sponge", "jar", "kettle"})
FPS = 30.0


@dataclass
class HandPose:
    x: float  # palm centre, world units
    y: float
    grip: float  # 0 = open flat hand, 1 = closed fist


@dataclass
class Stream:
    """A liquid stream (not annotated): from `start` to `end` in world units."""

    start: tuple
    end: tuple
    colour: tuple
    width: float


@dataclass
class FrameState:
    poses: dict  # object name -> Pose
    layers: dict  # object name -> drawing layer
    hands: dict  # hand name -> HandPose
    contacts: dict  # hand name -> name of the object it holds or touches (hand-object pairs)
    camera: Camera
    streams: list = field(default_factory=list)
    lifted: set = field(default_factory=set)  # objects held up off the counter (larger shadow)


def act_times(n: int) -> list:
    """Normalised times of n annotated frames spread over the act phase."""
    return [APPROACH_END + (ACT_END - APPROACH_END) * (i + 0.5) / n for i in range(n)]


def camera_at(scene: Scene, frame: int) -> Camera:
    """Head motion: slow sway plus small per-frame jitter; a pure function of (scene seed, frame)."""
    rng = np.random.default_rng([scene.seed, 7])
    amp = rng.uniform(6, 16, 2)
    freq = rng.uniform(0.1, 0.35, 4)
    phase = rng.uniform(0, 2 * math.pi, 4)
    jitter_scale = rng.uniform(0.5, 2.5)
    jitter = np.random.default_rng([scene.seed, 11, frame]).normal(0, jitter_scale, 3)
    s = frame / FPS
    return Camera(dx=float(amp[0] * math.sin(2 * math.pi * freq[0] * s + phase[0]) + jitter[0]),
                  dy=float(amp[1] * math.sin(2 * math.pi * freq[1] * s + phase[1]) + jitter[1]),
                  roll=float(0.02 * math.sin(2 * math.pi * freq[2] * s + phase[2]) + 0.002 * jitter[2]),
                  zoom=float(1.0 + 0.02 * math.sin(2 * math.pi * freq[3] * s + phase[3])))


class _Script:
    """Mutable state of one frame while a motion script fills it in."""

    def __init__(self, scene: Scene, action: Action, frame: int):
        self.scene = scene
        self.action = action
        self.p = action.params
        self.lead = action.side
        self.other = HAND_NAMES[1] if self.lead == HAND_NAMES[0] else HAND_NAMES[0]
        self.sign = 1.0 if self.lead == HAND_NAMES[1] else -1.0  # +1 when the right hand leads
        sway = 4.0 * math.sin(frame / FPS * 2.1 + scene.seed % 7)
        self.state = FrameState(
            poses={o.name: o.pose for o in scene.objects},
            layers={o.name: o.layer for o in scene.objects},
            hands={h: HandPose(scene.hands.rest[h][0] + sway, scene.hands.rest[h][1] - abs(sway), 0.3)
                   for h in HAND_NAMES},
            contacts={},
            camera=camera_at(scene, frame))

    # objects and hands
    def obj(self, role: str):
        name = self.action.target if role == "target" else self.action.roles[role]
        return self.scene.object(name)

    def rest(self, hand: str) -> np.ndarray:
        h = self.state.hands[hand]
        return np.array([h.x, h.y])

    def grip_at(self, name: str, pose: Pose, hand: str | None = None) -> np.ndarray:
        """Palm position for holding `name` at `pose`: on its grip point, or beside it for the small and
        upright things a hand grasps from the side (fingers over it, so it stays partly visible)."""
        obj = self.scene.object(name)
        if obj.key in SIDE_GRIP:
            box = footprint(obj.look, pose)
            right = (hand or self.lead) == HAND_NAMES[1]
            return np.array([box.x1 + 16 if right else box.x0 - 16, pose.y + 14])
        return pose.apply(grip_point(obj.look))

    def set_hand(self, hand: str, xy, grip: float) -> None:
        self.state.hands[hand] = HandPose(float(xy[0]), float(xy[1]), float(grip))

    def hold(self, hand: str, name: str, pose: Pose, grip: float = 1.0, lifted: bool = True,
             at=None) -> None:
        """Object at `pose`, hand on its grip point (or on `at`, local units), in contact."""
        self.state.poses[name] = pose
        palm = pose.apply(at) if at is not None else self.grip_at(name, pose, hand)
        self.set_hand(hand, palm, grip)
        self.state.contacts[hand] = name
        if lifted:
            self.state.layers[name] = HELD
            self.state.lifted.add(name)

    def reach(self, hand: str, goal, t: float, t0: float, t1: float, grip0: float = 0.3, grip1: float = 0.7) -> None:
        """Hand moves from its rest place to `goal` between t0 and t1 (or back when t0 > t1)."""
        u = smoothstep((t - t0) / (t1 - t0))
        start = self.rest(hand)
        self.set_hand(hand, lerp(start, np.asarray(goal, float), u), lerp(grip0, grip1, u))


def _phase(t: float, t0: float, t1: float) -> float:
    return min(max((t - t0) / (t1 - t0), 0.0), 1.0)


def _carry(s: _Script, t: float, name: str, hand: str, path: list, grab: float, release: float,
           lifted_from: float | None = None, grip: float = 1.0, at=None) -> None:
    """Approach `name` before `grab`, hold it along `path` (keyframes of Poses), let go at `release`."""
    first = path[0][1]
    goal = first.apply(at) if at is not None else s.grip_at(name, first, hand)
    if t < grab:
        s.reach(hand, goal, t, 0.0, grab)
    elif t <= release:
        pose = keyframes(t, path)
        lifted = lifted_from is not None and t >= lifted_from
        s.hold(hand, name, pose, grip=grip, lifted=lifted, at=at)
    else:
        last = path[-1][1]
        goal = last.apply(at) if at is not None else s.grip_at(name, last, hand)
        s.state.poses[name] = last
        u = smoothstep((t - release) / max(1.0 - release, 1e-6))
        s.set_hand(hand, lerp(np.asarray(goal, float), s.rest(hand), u), lerp(grip, 0.3, u))


def _steady_spot(s: _Script, name: str) -> np.ndarray:
    """Where the other hand's palm goes to hold an object still: at the end of a long object away from the
    leading hand, else beside a round one on the other hand's side (fingers reaching onto it)."""
    obj = s.scene.object(name)
    pose = s.state.poses[name]
    if obj.look.w > 1.8 * obj.look.h:
        ends = [pose.apply((-0.5 * obj.look.w, 0)), pose.apply((0.5 * obj.look.w, 0))]
        other = s.rest(s.other)
        return min(ends, key=lambda e: float(np.hypot(*(e - other)))) + np.array([-s.sign * 14.0, 30.0])
    return np.array([pose.x - s.sign * (0.5 * obj.look.w + 30), pose.y + 0.25 * obj.look.h + 24])


def _steady(s: _Script, t: float, hand: str, name: str, t0: float = 0.05, t1: float = 0.85) -> None:
    """The other hand holds an object still from the approach until the return."""
    if t < t0:
        return
    spot = _steady_spot(s, name)
    if t < APPROACH_END:
        s.reach(hand, spot, t, t0, APPROACH_END, 0.3, 0.6)
    elif t < t1:
        s.set_hand(hand, spot, 0.6)
        s.state.contacts[hand] = name
    else:
        s.reach(hand, spot, t, 1.0, t1, 0.3, 0.6)


# --- motions -------------------------------------------------------------------------------------------

def _pick(s: _Script, t: float) -> None:
    name = s.action.target
    p0 = s.state.poses[name]
    up = p0.moved(y=p0.y + 0.5 * s.p["lift"], sx=p0.sx * 1.15, sy=p0.sy * 1.15, angle=p0.angle + 0.15 * s.p["lean"])
    path = [(0.2, p0), (0.3, p0), (0.6, up), (0.8, up.moved(x=up.x + 8 * s.p["dx"])), (0.92, p0)]
    _carry(s, t, name, s.lead, path, grab=0.2, release=0.92, lifted_from=0.3)


def _place(s: _Script, t: float, beside: bool = False) -> None:
    name = s.action.target
    obj = s.scene.object(name)
    support = s.scene.object(s.action.roles["support"])
    p0 = s.state.poses[name]
    sp = support.pose
    if beside:  # next to the support, on the side towards the middle of the frame, with a gap
        box, own = footprint(support.look, sp), footprint(obj.look, p0)
        side = 1.0 if sp.x < 427 else -1.0
        gap = (box.x1 - box.x0) / 2 + (own.x1 - own.x0) / 2 + 40
        spot = np.array([sp.x + side * gap, sp.y + 0.1 * s.p["dy"] * support.look.h])
    else:
        spot = sp.apply((0.18 * s.p["dx"] * support.look.w, 0.15 * s.p["dy"] * support.look.h))
    dest = p0.moved(x=float(spot[0]), y=float(spot[1]))
    mid = lerp_pose(p0, dest, 0.5).moved(y=(p0.y + dest.y) / 2 - 0.5 * s.p["lift"], sx=p0.sx * 1.12, sy=p0.sy * 1.12)
    path = [(0.2, p0), (0.25, p0), (0.47, mid), (0.7, dest), (0.8, dest), (0.93, p0)]
    _carry(s, t, name, s.lead, path, grab=0.2, release=0.93, lifted_from=0.25)
    if 0.7 <= t <= 0.8 and not beside:
        s.state.layers[name] = ON_TOP


def _push(s: _Script, t: float) -> None:
    name = s.action.target
    obj = s.scene.object(name)
    p0 = s.state.poses[name]
    direction = 1.0 if p0.x < 427 else -1.0
    p1 = p0.moved(x=p0.x + direction * 80, y=p0.y + 15 * s.p["dy"])
    behind = (-direction * 0.55 * max(obj.look.w, obj.look.h), 0.1 * obj.look.h)
    at_local = _world_offset_to_local(p0, behind)
    path = [(0.2, p0), (0.75, p1), (0.8, p1), (0.95, p0)]
    _carry(s, t, name, s.lead, path, grab=0.2, release=0.95, lifted_from=None, grip=0.15, at=at_local)


def _world_offset_to_local(pose: Pose, offset) -> tuple:
    c, si = math.cos(pose.angle), math.sin(pose.angle)
    dx, dy = offset
    return (c * dx + si * dy) / pose.sx, (-si * dx + c * dy) / pose.sy


def _door_pose(obj, base: Pose, opened: float) -> Pose:
    """Drawers slide towards the camera; fridge doors swing about their hinge (shown as a shrinking width)."""
    if obj.key == "drawer":
        return base.moved(y=base.y + 38 * opened, sx=1 + 0.14 * opened, sy=1 + 0.3 * opened)
    sx = 1 - 0.62 * opened
    hinge = base.apply((-obj.look.w / 2, 0))
    c, si = math.cos(base.angle), math.sin(base.angle)
    half = obj.look.w / 2 * sx
    return base.moved(x=float(hinge[0] + c * half), y=float(hinge[1] + si * half), sx=sx)


def _open_close(s: _Script, t: float, opening: bool) -> None:
    name = s.action.target
    obj = s.scene.object(name)
    base = obj.pose
    grip = grip_point(obj.look)
    if opening:
        opened = smoothstep(_phase(t, 0.2, 0.75)) * (1 - smoothstep(_phase(t, 0.8, 0.95)))
    else:
        opened = smoothstep(_phase(t, 0.08, 0.2)) * (1 - smoothstep(_phase(t, 0.2, 0.75)))
    pose = _door_pose(obj, base, opened)
    s.state.poses[name] = pose
    grab, release = (0.2, 0.95) if opening else (0.08, 0.8)
    if t < grab:
        s.reach(s.lead, pose.apply(grip), t, 0.0, grab)
    elif t <= release:
        s.hold(s.lead, name, pose, grip=0.8, lifted=False)
    else:
        s.reach(s.lead, pose.apply(grip), t, 1.0, release)


def _tap(s: _Script, t: float, turning_on: bool) -> None:
    name = s.action.target
    obj = s.scene.object(name)
    sink = s.scene.object(s.action.roles["support"])
    pose = obj.pose
    # The palm stays in front of the tap with the fingers on the lever, so the tap stays in view.
    lever = pose.apply(grip_point(obj.look)) + np.array([s.sign * 30.0, 62.0])
    if t < APPROACH_END:
        s.reach(s.lead, lever, t, 0.0, APPROACH_END)
    elif t <= ACT_END + 0.05:
        s.set_hand(s.lead, lever, 0.7)
        s.state.contacts[s.lead] = name
    else:
        s.reach(s.lead, lever, t, 1.0, ACT_END + 0.05)
    on = (0.3 <= t <= 0.9) if turning_on else (0.1 <= t <= 0.45)
    if on:
        nozzle = pose.apply((0.44 * obj.look.w, 0))
        bottom = (float(nozzle[0]), float(sink.pose.y + 0.2 * sink.look.h))
        s.state.streams.append(Stream((float(nozzle[0]), float(nozzle[1])), bottom, (200, 220, 235), 7.0))


def _cut(s: _Script, t: float) -> None:
    target = s.obj("target")
    knife = s.obj("tool")
    tp = s.state.poses[target.name]
    angle = -math.pi / 2 - s.sign * (0.55 + 0.2 * s.p["lean"])  # tip up and away from the leading hand
    axis = np.array([math.cos(angle), math.sin(angle)])
    across = np.array([-axis[1], axis[0]])
    work_at = np.array([tp.x, tp.y])
    if target.look.w > 1.8 * target.look.h:
        held = _steady_spot(s, target.name)
        along = np.array([math.cos(tp.angle), math.sin(tp.angle)])
        away = -1.0 if float(np.dot(held - work_at, along)) > 0 else 1.0
        work_at = work_at + along * away * 0.15 * target.look.w
    centre = work_at - axis * 0.12 * knife.look.w
    u = _phase(t, APPROACH_END, ACT_END)
    stroke = math.sin(2 * math.pi * s.p["freq"] * u) * 0.12 * knife.look.w * s.p["amp"]
    drift = (0.25 - 0.5 * u) * s.sign * 0.5 * target.look.w
    working = centre + axis * stroke + across * drift
    cut_pose = Pose(float(working[0]), float(working[1]), angle)
    ready = Pose(float(centre[0] + across[0] * 0.125 * target.look.w * s.sign),
                 float(centre[1] + across[1] * 0.125 * target.look.w * s.sign), angle)
    k0 = knife.pose
    if t <= APPROACH_END or t >= ACT_END:
        path = [(0.1, k0), (0.2, ready), (0.8, ready), (0.9, k0)]
        _carry(s, t, knife.name, s.lead, path, grab=0.1, release=0.9, lifted_from=0.1)
    else:
        s.hold(s.lead, knife.name, cut_pose)
    _steady(s, t, s.other, target.name)


def _peel(s: _Script, t: float) -> None:
    target = s.obj("target")
    peeler = s.obj("tool")
    tp = s.state.poses[target.name]
    along = np.array([math.cos(tp.angle), math.sin(tp.angle)])
    outward = np.array([tp.x, tp.y]) - s.rest(s.lead)  # handle towards the hand, blade towards the food
    angle = tp.angle + math.pi / 2
    if math.cos(angle) * outward[0] + math.sin(angle) * outward[1] < 0:
        angle += math.pi
    angle += 0.3 * s.p["lean"]
    blade = np.array([0.35 * peeler.look.w, 0.0])
    u = _phase(t, APPROACH_END, ACT_END)
    cycle = (s.p["freq"] + 1) * u % 1.0
    sweep = (smoothstep(cycle / 0.7) if cycle < 0.7 else 1 - smoothstep((cycle - 0.7) / 0.3)) - 0.5
    reach = 0.3 * max(target.look.w, target.look.h)
    held = _steady_spot(s, target.name)
    away = 1.0 if float(np.dot(held - np.array([tp.x, tp.y]), along)) < 0 else -1.0
    along = along * away
    spot = np.array([tp.x, tp.y]) + along * (0.2 * reach + (sweep + 0.5) * reach)
    c, si = math.cos(angle), math.sin(angle)
    centre = spot - np.array([c * blade[0], si * blade[0]])
    work = Pose(float(centre[0]), float(centre[1]), angle)
    start = np.array([tp.x, tp.y]) + along * 0.2 * reach - np.array([c * blade[0], si * blade[0]])
    ready = Pose(float(start[0]), float(start[1]), angle)
    k0 = peeler.pose
    if t <= APPROACH_END or t >= ACT_END:
        _carry(s, t, peeler.name, s.lead, [(0.1, k0), (0.2, ready), (0.8, ready), (0.9, k0)], grab=0.1,
               release=0.9, lifted_from=0.1)
    else:
        s.hold(s.lead, peeler.name, work)
    _steady(s, t, s.other, target.name)


def _scrub(s: _Script, t: float) -> None:
    target = s.obj("target")
    sponge = s.obj("tool")
    sink = s.obj("support")
    t0 = s.state.poses[target.name]
    over = t0.moved(x=sink.pose.x + 0.12 * s.p["dx"] * sink.look.w, y=sink.pose.y + 0.08 * s.p["dy"] * sink.look.h,
                    sx=1.08, sy=1.08)
    _carry(s, t, target.name, s.other, [(0.1, t0), (0.2, over), (0.8, over), (0.92, t0)], grab=0.1, release=0.92,
           lifted_from=0.1)
    s0 = sponge.pose
    u = _phase(t, APPROACH_END, ACT_END)
    radius = 0.2 * max(target.look.w, target.look.h)
    a = 2 * math.pi * s.p["freq"] * u
    circling = s0.moved(x=over.x + radius * math.cos(a), y=over.y + radius * math.sin(a) * 0.7)
    if APPROACH_END < t < ACT_END:
        s.hold(s.lead, sponge.name, circling)
        s.state.layers[sponge.name] = HELD + 0.5
    else:
        start = s0.moved(x=over.x + radius, y=over.y)
        _carry(s, t, sponge.name, s.lead, [(0.1, s0), (0.2, start), (0.8, start), (0.92, s0)], grab=0.1,
               release=0.92, lifted_from=0.1)
        if sponge.name in s.state.lifted:
            s.state.layers[sponge.name] = HELD + 0.5
    tap = s.scene.by_key("tap")
    if tap is not None and APPROACH_END <= t <= ACT_END:
        nozzle = tap.pose.apply((0.44 * tap.look.w, 0))
        s.state.streams.append(Stream((float(nozzle[0]), float(nozzle[1])), (over.x, over.y), (200, 220, 235), 6.0))


def _wipe(s: _Script, t: float) -> None:
    target = s.obj("target")
    cloth = s.obj("tool")
    tp = s.state.poses[target.name]
    u = _phase(t, APPROACH_END, ACT_END)
    x = tp.x + 0.3 * target.look.w * math.sin(2 * math.pi * s.p["freq"] * u)
    y = tp.y + (u - 0.5) * 0.5 * target.look.h
    c0 = cloth.pose
    work = c0.moved(x=float(x), y=float(y))
    start = c0.moved(x=float(tp.x), y=float(tp.y - 0.25 * target.look.h))
    if APPROACH_END < t < ACT_END:
        s.hold(s.lead, cloth.name, work, grip=0.2, lifted=False)
        s.state.layers[cloth.name] = ON_TOP + 0.5
    else:
        _carry(s, t, cloth.name, s.lead, [(0.1, c0), (0.2, start), (0.8, start), (0.92, c0)], grab=0.1,
               release=0.92, lifted_from=0.1, grip=0.2)
    if s.p["other_holds"]:
        _steady(s, t, s.other, target.name)


def _pour(s: _Script, t: float) -> None:
    target = s.obj("target")
    bottle = s.obj("tool")
    b0 = s.state.poses[bottle.name]
    tp = s.state.poses[target.name]
    tilt = -s.sign * (1.95 + 0.2 * s.p["lean"])  # past horizontal: the spout ends up below the bottom
    upright = -math.pi / 2
    spout_local = np.array([0.5 * bottle.look.w, 0.0])
    # The spout is held high above the target's top edge, so the hand-object box stays clear of the
    # target: it is positive through the narration only, as the glass in a real pouring clip.
    spout = np.array([tp.x + s.sign * 0.2 * target.look.w, tp.y - 0.5 * target.look.h - 55])
    spout[1] = max(spout[1], 0.5 * bottle.look.w + 20)  # keep the bottle in view near the top edge
    angle = upright + tilt
    centre = spout - 1.1 * spout_local[0] * np.array([math.cos(angle), math.sin(angle)])
    tilted = Pose(float(centre[0]), float(centre[1]), angle, 1.1, 1.1)
    above = tilted.moved(x=tilted.x + s.sign * 15, y=tilted.y - 35, angle=upright)
    path = [(0.08, b0), (0.22, above), (0.36, tilted), (0.7, tilted), (0.8, above), (0.92, b0)]
    _carry(s, t, bottle.name, s.lead, path, grab=0.08, release=0.92, lifted_from=0.08)
    if 0.36 <= t <= 0.7:
        pose = s.state.poses[bottle.name]
        spout = pose.apply(spout_local)
        liquid = (235, 205, 90) if "oil" in s.action.narration else (245, 245, 240) if "milk" in s.action.narration \
            else (240, 150, 60) if "juice" in s.action.narration else (200, 220, 235)
        s.state.streams.append(Stream((float(spout[0]), float(spout[1])), (tp.x, tp.y), liquid, 6.0))


def _stir(s: _Script, t: float) -> None:
    target = s.obj("target")
    spoon = s.obj("tool")
    tp = s.state.poses[target.name]
    body = tp.apply((-(target.look.w - target.look.h) / 2, 0)) if target.key == "pan" else np.array([tp.x, tp.y])
    rest = s.rest(s.lead)
    angle = math.atan2(body[1] - rest[1], body[0] - rest[0]) + 0.3 * s.p["lean"]
    head = np.array([0.33 * spoon.look.w, 0.0])
    c, si = math.cos(angle), math.sin(angle)
    u = _phase(t, APPROACH_END, ACT_END)
    radius = 0.22 * target.look.h
    a = 2 * math.pi * s.p["freq"] * u

    def at(point) -> Pose:
        centre = point - np.array([c * head[0], si * head[0]])
        return Pose(float(centre[0]), float(centre[1]), angle)

    k0 = spoon.pose
    start = at(body + np.array([radius, 0.0]))
    if APPROACH_END < t < ACT_END:
        s.hold(s.lead, spoon.name, at(body + radius * np.array([math.cos(a), math.sin(a)])))
    else:
        _carry(s, t, spoon.name, s.lead, [(0.1, k0), (0.2, start), (0.8, start), (0.9, k0)], grab=0.1, release=0.9,
               lifted_from=0.1)
    if s.p["other_holds"]:
        handle = s.grip_at(target.name, tp)
        if APPROACH_END <= t <= ACT_END:
            s.set_hand(s.other, handle, 0.9)
            s.state.contacts[s.other] = target.name
        elif t < APPROACH_END:
            s.reach(s.other, handle, t, 0.05, APPROACH_END)
        else:
            s.reach(s.other, handle, t, 0.95, ACT_END)


def _shake(s: _Script, t: float) -> None:
    name = s.action.target
    b0 = s.state.poses[name]
    up = b0.moved(y=b0.y + 0.4 * s.p["lift"], sx=1.12, sy=1.12)  # lifted towards the camera
    if APPROACH_END + 0.08 < t < ACT_END - 0.04:
        u = _phase(t, APPROACH_END + 0.08, ACT_END - 0.04)
        wave = math.sin(2 * math.pi * (s.p["freq"] + 2) * u)
        s.hold(s.lead, name, up.moved(y=up.y + 22 * wave, angle=up.angle + 0.12 * wave))
    else:
        _carry(s, t, name, s.lead, [(0.2, b0), (0.28, up), (0.76, up), (0.9, b0)], grab=0.2, release=0.9,
               lifted_from=0.2)


MOTIONS = {
    "pick": _pick, "place": _place, "place_beside": lambda s, t: _place(s, t, beside=True), "push": _push,
    "open": lambda s, t: _open_close(s, t, True), "close": lambda s, t: _open_close(s, t, False),
    "tap_on": lambda s, t: _tap(s, t, True), "tap_off": lambda s, t: _tap(s, t, False),
    "cut": _cut, "peel": _peel, "scrub": _scrub, "wipe": _wipe, "pour": _pour, "stir": _stir, "shake": _shake,
}


def frame_state(scene: Scene, action: Action, t: float, frame: int) -> FrameState:
    """The state of `scene` at normalised time t of `action`; `frame` (video frame index) drives the camera."""
    script = _Script(scene, action, frame)
    MOTIONS[action.motion](script, min(max(t, 0.0), 1.0))
    return script.state
