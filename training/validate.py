"""In-training validation: gIoU of a model on a few segments of a clean split, scored in-process with the
`actiseg eval` metrics code on the same predictions `actiseg infer` writes. Co-teaching uses it to decide
which of its two models becomes model.pt."""
from __future__ import annotations

import copy

import numpy as np
from tqdm import tqdm

from actiseg_ros.data import actionvos
from actiseg_ros.evaluation.metrics import MetricAccumulator

from .infer import TorchRunner, segment_outputs


def pick_segments(root, split: str, count: int) -> list:
    """Up to `count` evaluable segments of the split, spread evenly over it (deterministic)."""
    segments = [s for s in actionvos.read_split(root, split).segments if s.evaluable]
    if not segments:
        raise actionvos.DatasetError("%s: split %s has no evaluable segment to validate on" % (root, split))
    if len(segments) <= count:
        return segments
    return [segments[i * len(segments) // count] for i in range(count)]


def score_segments(runner, root, split: str, segments: list, thresholds, desc: str = "validate",
                   gates=None) -> dict:
    """{mask threshold: MetricAccumulator} of `runner` over every frame and object of `segments`: the model
    runs once per segment and each threshold's label images are scored from the same logits. With `gates`,
    {(positive gate, mask threshold): MetricAccumulator} for every pair, the decisions re-gated from the same
    mean positive logits."""
    pairs = [(None, t) for t in thresholds] if gates is None else [(g, t) for g in gates for t in thresholds]
    scores = {(g, t): MetricAccumulator() for g, t in pairs}
    for segment in tqdm(segments, desc=desc, leave=False):
        outputs = segment_outputs(runner, root, split, segment)
        positives = {k: bool(info.positive) for k, info in segment.objects.items()}
        truths = {frame: actionvos.read_label_png(actionvos.annotation_path(root, split, segment.name, frame))
                  for frame, _logits, _box in outputs.frames}
        for (gate, threshold), accumulator in scores.items():
            for frame, labels in outputs.labels(threshold, gate):
                accumulator.add_frame(labels, truths[frame], positives)
    return scores if gates is not None else {t: accumulator for (_g, t), accumulator in scores.items()}


def validation_giou(model, root, split: str, segments: list, input_hw, desc: str = "validate") -> float:
    """gIoU in [0, 1] of `model` (an ActiSegModel) over every frame and object of `segments`.

    The model is put in eval mode for the predictions and back in its previous mode afterwards. A model on
    an accelerator is scored through a CPU copy, since predict_segment feeds CPU tensors.
    """
    if next(model.parameters()).device.type != "cpu":
        model = copy.deepcopy(model).cpu()
    was_training = model.training
    model.eval()
    runner = TorchRunner(model, input_hw)
    scores = score_segments(runner, root, split, segments, [runner.mask_threshold], desc)[runner.mask_threshold]
    model.train(was_training)
    return float(np.nan_to_num(scores.result()["gIoU"]))
