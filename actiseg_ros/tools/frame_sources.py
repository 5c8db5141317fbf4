"""Frame sources for the replay node: a video file, an image folder, one ActionVOS sequence, an image topic of a
ROS 2 bag, or the built-in synthetic stream. Each gives frames by index and, for the `auto` action script, the
narrations it carries (a bag: the actions recorded on its action topic).

    source = open_source("synthetic", seed=3, size=(640, 480))
    len(source); source.frame(i) -> (H, W, 3) uint8 RGB; source.auto_script(start, end) -> [(index, narration, objects)]
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

SOURCE_KINDS = ("synthetic", "video", "folder", "actionvos", "bag")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class SourceError(ValueError):
    """The source cannot be opened; the message names the path or setting."""


def _resize(rgb: np.ndarray, size) -> np.ndarray:
    if not size or tuple(size) == (0, 0) or tuple(size) == (rgb.shape[1], rgb.shape[0]):
        return rgb
    return cv2.resize(rgb, tuple(int(v) for v in size), interpolation=cv2.INTER_AREA)


class SyntheticSource:
    """actiseg_ros.data.synth.SceneStream: a scene doing several narrated actions, with ground truth."""

    def __init__(self, seed: int = 0, size=(640, 480), actions: int = 4, domain: str = "kitchen"):
        from actiseg_ros.data.synth import SceneStream
        from actiseg_ros.data.synth_domain import DOMAINS

        if domain not in DOMAINS:
            raise SourceError("unknown synthetic domain %r (known: %s)" % (domain, ", ".join(sorted(DOMAINS))))
        self.stream = SceneStream(seed=int(seed), size=(int(size[0]), int(size[1])), actions=int(actions),
                                  domain=domain)

    def __len__(self) -> int:
        return len(self.stream)

    def frame(self, index: int) -> np.ndarray:
        return self.stream.render(index).rgb

    def auto_script(self, start: int, end: int) -> list:
        """(first index in [start, end), narration, scene object names) of every action shown in that range."""
        names = list(self.stream.scene.object_names)
        return [(max(first, start), narration, names) for first, last, narration in self.stream.timeline
                if last >= start and first < end]


class VideoSource:
    """Frames decoded in order (seeking only when asked out of order: it is unreliable across codecs)."""

    def __init__(self, path, size=None):
        self.path = Path(path)
        self.size = size
        self.capture = cv2.VideoCapture(str(self.path))
        if not self.path.is_file() or not self.capture.isOpened():
            raise SourceError("cannot open the video %s (missing, or a codec OpenCV lacks)" % self.path)
        self.count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if self.count <= 0:
            raise SourceError("the video %s reports no frames" % self.path)
        self._next = 0

    def __len__(self) -> int:
        return self.count

    def frame(self, index: int) -> np.ndarray:
        if index != self._next:
            self.capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, bgr = self.capture.read()
        if not ok:
            raise SourceError("cannot decode frame %d of %s" % (index, self.path))
        self._next = index + 1
        return _resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self.size)

    def auto_script(self, start: int, end: int) -> list:
        return []


class FolderSource:
    def __init__(self, path, size=None):
        self.path = Path(path)
        if not self.path.is_dir():
            raise SourceError("image folder %s does not exist" % self.path)
        self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise SourceError("image folder %s holds no %s files" % (self.path, "/".join(IMAGE_SUFFIXES)))
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def frame(self, index: int) -> np.ndarray:
        bgr = cv2.imread(str(self.files[index]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SourceError("cannot read the image %s" % self.files[index])
        return _resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self.size)


class ActionVosSource:
    """The frames of one segment of an ActionVOS-layout data set; its narration is the auto script."""

    def __init__(self, root, split: str, sequence: str, size=None):
        from actiseg_ros.data.actionvos import DatasetError, image_path, read_split

        try:
            segments = read_split(root, split, check_files=False).segments
        except DatasetError as err:
            raise SourceError(str(err)) from None
        by_name = {s.name: s for s in segments}
        if not sequence:
            if not segments:
                raise SourceError("split %s of %s has no segments" % (split, root))
            sequence = segments[0].name
        if sequence not in by_name:
            raise SourceError("no sequence %r in split %s of %s (first ones: %s)"
                              % (sequence, split, root, ", ".join(list(by_name)[:5])))
        self.segment = by_name[sequence]
        self.files = [image_path(root, split, sequence, f) for f in self.segment.sparse_frames]
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def frame(self, index: int) -> np.ndarray:
        from actiseg_ros.data.actionvos import DatasetError, read_image

        try:
            return _resize(read_image(self.files[index]), self.size)
        except (DatasetError, OSError) as err:
            raise SourceError("cannot read %s: %s" % (self.files[index], err)) from None

    def auto_script(self, start: int, end: int) -> list:
        names = [o.name for o in self.segment.objects.values()]
        return [(start, self.segment.narration, names)] if start < end else []


class BagSource:
    """The frames of one image topic of a ROS 2 bag (actiseg_ros.data.bags), read in recorded order; the
    actions recorded on `action_topic` are the auto script, each from the first frame recorded at or after it.

    times_ns: every frame's log time (the recorded timing); header(index) -> (stamp_ns, frame_id) as recorded.
    """

    def __init__(self, path, image_topic: str = "", action_topic: str = "", size=None):
        from actiseg_ros.data.bags import BagError, open_bag

        try:
            self.bag = open_bag(path)
            self.topic = self.bag.image_topic(image_topic)
            self.infos = self.bag.frame_infos(self.topic)  # one pass over the topic, pixels not decoded
            self.actions = self.bag.actions(action_topic) if action_topic else []
        except BagError as err:
            raise SourceError(str(err)) from None
        if not self.infos:
            raise SourceError("topic %s of bag %s holds no frames" % (self.topic, path))
        self.times_ns = [info.log_ns for info in self.infos]
        self.size = size
        self._reading = None  # the frames generator while frames are asked for in order
        self._next = 0

    def __len__(self) -> int:
        return len(self.infos)

    def header(self, index: int) -> tuple:
        return self.infos[index].stamp_ns, self.infos[index].frame_id

    def frame(self, index: int) -> np.ndarray:
        from actiseg_ros.data.bags import BagError

        try:
            if self._reading is None or index != self._next:  # seek: read on from the frame's log time
                self._reading = self.bag.frames(self.topic, start_ns=self.times_ns[index])
                # frames logged in the same nanosecond before this one
                for _ in range(index - self.times_ns.index(self.times_ns[index])):
                    next(self._reading)
            found = next(self._reading, None)
        except BagError as err:
            raise SourceError(str(err)) from None
        if found is None:
            raise SourceError("bag %s ended before frame %d of topic %s" % (self.bag.path, index, self.topic))
        self._next = index + 1
        return _resize(found.rgb, self.size)

    def auto_script(self, start: int, end: int) -> list:
        from actiseg_ros.data.bags import frame_of_time

        script = []
        for action in self.actions:
            index = max(frame_of_time(self.times_ns, action.log_ns), start)
            if index < end:
                script.append((index, action.text, []))
        return script

    def close(self) -> None:
        self.bag.close()


def open_source(kind: str, path: str = "", seed: int = 0, size=(640, 480), actions: int = 4, split: str = "val",
                sequence: str = "", image_topic: str = "", action_topic: str = "", domain: str = "kitchen"):
    """size: (width, height); for video, folder, actionvos and bag (0, 0) keeps the recorded size.
    image_topic, action_topic: topics in the bag ('' image topic: the bag's only one; '' action topic: none).
    domain: the synthetic stream's kitchen (synth_domain.DOMAINS)."""
    if kind == "synthetic":
        if not size or min(size) <= 0:
            raise SourceError("the synthetic source needs a positive width and height, got %s" % (size,))
        return SyntheticSource(seed, size, actions, domain)
    if kind in ("video", "folder", "actionvos", "bag") and not path:
        raise SourceError("the %s source needs the parameter path" % kind)
    if kind == "video":
        return VideoSource(path, size)
    if kind == "folder":
        return FolderSource(path, size)
    if kind == "actionvos":
        return ActionVosSource(path, split, sequence, size)
    if kind == "bag":
        return BagSource(path, image_topic, action_topic, size)
    raise SourceError("unknown source %r (choose from %s)" % (kind, ", ".join(SOURCE_KINDS)))


def parse_script(entries) -> list:
    """['12:cut onion', ...] -> [(12, 'cut onion'), ...] sorted by frame; empty entries are skipped."""
    script = []
    for entry in entries:
        if not entry.strip():
            continue
        index, sep, text = entry.partition(":")
        if not sep or not index.strip().isdigit():
            raise SourceError("action script entry %r must be FRAME:ACTION, e.g. '30:cut onion with knife'" % entry)
        script.append((int(index), text.strip()))
    return sorted(script, key=lambda item: item[0])
