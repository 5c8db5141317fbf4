"""The label-noise-learning strategies (spec section 5) as small objects that the training loop drives.

`loss.strategy` in the config picks one; its hyper-parameters live in `loss.<strategy>` (spec defaults).
The loss pieces are in lnl.py; this module decides where they go in the objective and keeps their state.

How each strategy meets the base objective ("mask slot" = the pixel-wise mask loss; the positive-head loss
is never changed; "supervised layers" = the final decoder layer, plus the earlier layers under
deep_supervision without PMHM, see objective.supervised_layers):

| strategy   | mask slot                                                          | with PMHM | state            |
|------------|--------------------------------------------------------------------|-----------|------------------|
| none       | base (PMHM, or focal+dice)                                         | yes       | -                |
| sce        | base + 2 SCE on each supervised layer                              | adds      | -                |
| gce        | base + 2 GCE on each supervised layer                              | adds      | -                |
| elr        | base + 2 ELR regulariser on each supervised layer                  | adds      | ELR targets      |
| apl        | 2 APL + 5 dice on each supervised layer (APL replaces focal)       | error     | -                |
| npn        | warm-up: base; then 2 (PLL + 0.1 NL + 0.2 CR) + 5 dice per layer   | error     | candidate labels |
| coteaching | base, each model on the clips its peer ranked small-loss           | yes       | group selection  |

SCE, GCE and ELR add a robust term, so on top of PMHM they add it to the final layer's logits. APL and NPN
replace the focal term, which PMHM replaces as well: the config rejects them with loss.pmhm (config.py).
ELR targets and NPN candidates are updated from the final layer's predictions and keyed by (segment index,
frame position in the segment, object id), which names the same pixels whenever a clip recurs.

Co-teaching trains two models (seeds config.seed and config.seed + 1). Each epoch's clip order is cut into
groups of `group_size` (128) clips; at the start of a group both models score every clip of it (no
gradient, eval mode: per-clip base focal+dice plus positive loss), `CoTeachingBuffer` keeps for each model
the R(t) smallest-loss fraction, and the group's optimiser steps then replay those clips in batches of
`batch_size`: model A on B's small-loss clips, B on A's (spec: "each model keeps ... its peer trains on
it"). So with any batch size a ranking always covers 128 clips (the last group of an epoch, or a data set
of fewer clips, is smaller), and an epoch has sum(ceil(k_group / batch_size)) steps, k = floor(R * clips),
which shrinks with R(t) = 0.95 - 0.1 (epoch - 1) / 6. Training uses the configured objective (PMHM too).
At the end both are scored (gIoU) on `coteaching.val_segments` clean segments of val_split; the better
becomes model.pt and the other model_peer.pt.

State for exact resume: `state_dict()` goes into every checkpoint (ELR targets, NPN counts, the current
co-teaching selection); a resumed run continues a group's replay from the stored selection. The stateful
strategies (elr, npn, coteaching) run single-process only: under DDP each rank would hold part of it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from actiseg_ros.inference.preprocess import PIXEL_MEAN, PIXEL_SCALE

from . import lnl, losses, objective
from .config import SINGLE_PROCESS
from .objective import add_head_losses, flatten_batch, supervised_layers


@dataclass
class StepContext:
    progress: float  # fraction of training done, in [0, 1] (PMHM's Tversky annealing)
    epoch: int  # 0-based
    step: int  # 0-based global step of this update


def row_keys(batch: dict) -> list:
    """(segment index, frame position, object id) of each row of objective.flatten_batch, in its order."""
    b, t, k = batch["targets"].shape[:3]
    index, frames = batch["index"].tolist(), batch["frames"].tolist()
    object_ids, valid = batch["object_ids"].tolist(), batch["valid"].tolist()
    return [(index[i], frames[i][j], object_ids[i][n]) for i in range(b) for j in range(t) for n in range(k)
            if valid[i][n]]


def row_clip_ids(batch: dict) -> torch.Tensor:
    """(N,) int64: the clip (batch position) of each row of objective.flatten_batch."""
    b, t, k = batch["targets"].shape[:3]
    valid = batch["valid"].unsqueeze(1).expand(b, t, k).reshape(-1)
    return torch.arange(b, device=valid.device).view(b, 1, 1).expand(b, t, k).reshape(-1)[valid]


class Strategy:
    """No strategy: the configured objective. Subclasses override `mask_loss` or the batch plan.

    The loop calls, per optimiser step: `batches(...)` (one index list per trained model), then for each
    model `loss(forward, batch, context)`; `state_dict()` at every checkpoint; `final_models(...)` at the end.
    """

    name = "none"
    members = 1  # models trained together

    def __init__(self, config):
        self.config = config

    def steps_in_epoch(self, epoch: int, num_clips: int, batch_size: int) -> int:
        return num_clips // batch_size

    def batches(self, epoch: int, step_in_epoch: int, order: list, batch_size: int, score) -> list:
        """Dataset indices each model trains on at this step. `score(member, indices) -> (outputs, batch)`
        runs a model without gradient (co-teaching ranks clips with it)."""
        start = step_in_epoch * batch_size
        return [order[start:start + batch_size]]

    def loss(self, forward, batch: dict, context: StepContext) -> tuple:
        """forward(images (B, T, 3, H, W)) -> model outputs. Returns (total loss, {name: detached value})."""
        outputs = forward(batch["images"])
        rows = flatten_batch(outputs, batch)
        mask_total, parts = self.mask_loss(rows, batch, forward, context)
        return add_head_losses(mask_total, parts, outputs, batch, self.config)

    def mask_loss(self, rows: dict, batch: dict, forward, context: StepContext) -> tuple:
        return objective.mask_loss(rows, self.config, context.progress, context.epoch)

    def final_models(self, models: list, log=print) -> list:
        """[(file name, model, extra info)] to save when training ends."""
        return [("model.pt", models[0], {})]

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class AddedTerm(Strategy):
    """Base mask loss + weight * term(logits) on each supervised layer (SCE, GCE, ELR)."""

    weight = lnl.LNL_TERM_WEIGHT

    def prepare(self, rows: dict, batch: dict):
        """Per-step data the term needs (ELR: the updated targets)."""
        return None

    def term(self, logits: torch.Tensor, rows: dict, prepared) -> torch.Tensor:
        raise NotImplementedError

    def mask_loss(self, rows, batch, forward, context):
        total, parts = objective.mask_loss(rows, self.config, context.progress, context.epoch)
        prepared = self.prepare(rows, batch)
        terms = [self.term(logits, rows, prepared) for logits in supervised_layers(rows, self.config)]
        parts[self.name] = terms[0].detach()  # final layer, unweighted
        return total + self.weight * sum(terms), parts


class SCE(AddedTerm):
    name = "sce"

    def __init__(self, config):
        super().__init__(config)
        self.params = config.loss.sce
        self.weight = self.params.weight

    def term(self, logits, rows, prepared):
        return lnl.sce_loss(logits, rows["target"], alpha=self.params.alpha, beta=self.params.beta)


class GCE(AddedTerm):
    name = "gce"

    def __init__(self, config):
        super().__init__(config)
        self.params = config.loss.gce
        self.weight = self.params.weight

    def term(self, logits, rows, prepared):
        return lnl.gce_loss(logits, rows["target"], q=self.params.q)


class ELR(AddedTerm):
    """Early-learning regularisation against per-pixel moving-average targets (not the noisy labels)."""

    name = "elr"
    weight = losses.MASK_FOCAL_WEIGHT  # the regulariser sits inside the focal slot: 2 (focal + ELR)

    def __init__(self, config):
        super().__init__(config)
        self.params = config.loss.elr
        self.targets = lnl.ELRTargets(self.params.previous_weight)

    def prepare(self, rows, batch):
        return self.targets.update(row_keys(batch), torch.sigmoid(rows["logits"]))

    def term(self, logits, rows, prepared):
        return lnl.elr_regulariser(logits, prepared, lam=self.params.lam)

    def state_dict(self):
        return self.targets.state_dict()

    def load_state_dict(self, state):
        self.targets.load_state_dict(state)


class APL(Strategy):
    """Active-passive loss in place of the focal term: 2 (10 GCE + 1 MAE) * action weights + 5 dice."""

    name = "apl"

    def __init__(self, config):
        super().__init__(config)
        self.params = config.loss.apl

    def mask_loss(self, rows, batch, forward, context):
        total, parts = 0.0, {}
        for logits in supervised_layers(rows, self.config):
            apl = lnl.apl_loss(logits, rows["target"], rows["weight"], active_weight=self.params.active_weight,
                               passive_weight=self.params.passive_weight, q=self.params.q)
            dice = losses.dice_loss(logits, rows["target"])
            total = total + lnl.LNL_TERM_WEIGHT * apl + losses.MASK_DICE_WEIGHT * dice
            parts = parts or {"apl": apl.detach(), "dice": dice.detach()}
        return total, parts


def strong_view(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Normalised model input (B, T, 3, H, W) -> the same images under lnl.photometric_strong, normalised."""
    rgb = (images * PIXEL_SCALE + PIXEL_MEAN) / 255.0
    return (lnl.photometric_strong(rgb.clamp(0.0, 1.0), generator) * 255.0 - PIXEL_MEAN) / PIXEL_SCALE


class NPN(Strategy):
    """Partial-label + negative learning with candidate labels accumulated from warm-up on."""

    name = "npn"

    def __init__(self, config):
        super().__init__(config)
        self.params = config.loss.npn
        self.candidates = lnl.CandidateLabels(self.params.confidence)

    def strong_generator(self, step: int, device) -> torch.Generator:
        # Keyed by (seed, step): a resumed run draws the same strong views.
        seed = int(np.random.SeedSequence([self.config.seed, step, 0x6E706E]).generate_state(1)[0])
        return torch.Generator(device=device).manual_seed(seed)

    def mask_loss(self, rows, batch, forward, context):
        counts, current = self.candidates.update(row_keys(batch), rows["logits"], rows["target"])
        if context.epoch < self.params.warmup_epochs:
            return objective.mask_loss(rows, self.config, context.progress, context.epoch)
        images = batch["images"]
        strong_rows = flatten_batch(forward(strong_view(images, self.strong_generator(context.step, images.device))),
                                    batch)
        total, parts = 0.0, {}
        for weak, strong in zip(supervised_layers(rows, self.config), supervised_layers(strong_rows, self.config)):
            pll = lnl.npn_pll_loss(weak, counts)
            nl = lnl.npn_nl_loss(weak, current)
            cr = lnl.npn_consistency_loss(strong, weak, confidence=self.params.confidence)
            dice = losses.dice_loss(weak, rows["target"])
            total = total + (losses.MASK_FOCAL_WEIGHT * (pll + self.params.nl_weight * nl + self.params.cr_weight * cr)
                             + losses.MASK_DICE_WEIGHT * dice)
            parts = parts or {"pll": pll.detach(), "nl": nl.detach(), "cr": cr.detach(), "dice": dice.detach()}
        return total, parts

    def state_dict(self):
        return self.candidates.state_dict()

    def load_state_dict(self, state):
        self.candidates.load_state_dict(state)


def kept_count(clips: int, keep_fraction: float) -> int:
    """How many clips lnl.coteaching_select keeps of a group of `clips`."""
    return max(1, math.floor(keep_fraction * clips + 1e-9))


def group_sizes(num_clips: int, group_size: int) -> list:
    return [min(group_size, num_clips - start) for start in range(0, num_clips, group_size)]


def clip_ranking_losses(outputs: dict, batch: dict, config) -> torch.Tensor:
    """(B,) co-teaching ranking loss of each clip: mean base focal+dice over its rows + weighted positive loss."""
    rows = flatten_batch(outputs, batch)
    per_row, _ = losses.base_mask_loss(rows["logits"], rows["target"], rows["weight"], reduction="none")
    b = batch["targets"].shape[0]
    mask = lnl.per_clip_mean(per_row, row_clip_ids(batch), b)
    positive_logits = objective.clip_positive_logits(outputs, batch)
    positive = torch.stack([losses.positive_focal(positive_logits[i], batch["positive"][i], valid=batch["valid"][i])
                            for i in range(b)])
    return (mask + config.loss.positive * positive).double().cpu()


class CoTeaching(Strategy):
    name = "coteaching"
    members = 2

    def __init__(self, config):
        from .validate import pick_segments

        super().__init__(config)
        self.params = config.loss.coteaching
        # Read now: a missing validation split must fail before hours of training, not after.
        self.validation_segments = pick_segments(config.data_root, config.val_split, self.params.val_segments)
        self.selection = None  # {"epoch", "group", "for_a", "for_b"}: the group being replayed

    def keep_rate(self, epoch: int) -> float:
        return lnl.coteaching_keep_rate(epoch + 1, self.params.keep_start, self.params.keep_drop,
                                        self.params.ramp_epochs)

    def group_steps(self, epoch: int, num_clips: int, batch_size: int) -> list:
        rate = self.keep_rate(epoch)
        return [-(-kept_count(m, rate) // batch_size) for m in group_sizes(num_clips, self.params.group_size)]

    def steps_in_epoch(self, epoch, num_clips, batch_size):
        return sum(self.group_steps(epoch, num_clips, batch_size))

    def batches(self, epoch, step_in_epoch, order, batch_size, score):
        steps = self.group_steps(epoch, len(order), batch_size)
        group, replay = 0, step_in_epoch
        while replay >= steps[group]:
            replay -= steps[group]
            group += 1
        if self.selection is None or (self.selection["epoch"], self.selection["group"]) != (epoch, group):
            start = group * self.params.group_size
            self.selection = self.select(order[start:start + self.params.group_size], epoch, batch_size, score)
            self.selection.update(epoch=epoch, group=group)
        chunk = slice(replay * batch_size, (replay + 1) * batch_size)
        return [self.selection["for_a"][chunk], self.selection["for_b"][chunk]]

    def select(self, clips: list, epoch: int, batch_size: int, score) -> dict:
        """Rank one group's clips under both models; each model gets its peer's small-loss clips."""
        rate = self.keep_rate(epoch)
        buffer = lnl.CoTeachingBuffer(self.params.group_size)
        selection = None
        for start in range(0, len(clips), batch_size):
            chunk = clips[start:start + batch_size]
            ranked = [clip_ranking_losses(*score(member, chunk), self.config) for member in (0, 1)]
            for clip, loss_a, loss_b in zip(chunk, ranked[0].tolist(), ranked[1].tolist()):
                selection = buffer.add(clip, loss_a, loss_b, rate) or selection
        selection = selection or buffer.flush(rate)
        return {"for_a": list(selection.for_a), "for_b": list(selection.for_b)}

    def final_models(self, models, log=print):
        from .validate import validation_giou

        scores = [validation_giou(model, self.config.data_root, self.config.val_split, self.validation_segments,
                                  self.config.model.input_hw, desc="validate model %d" % i)
                  for i, model in enumerate(models)]
        best = 0 if scores[0] >= scores[1] else 1
        log("co-teaching: gIoU on %d %s segments: model seed %d %.4f, model seed %d %.4f; model.pt = seed %d"
            % (len(self.validation_segments), self.config.val_split, self.config.seed, scores[0],
               self.config.seed + 1, scores[1], self.config.seed + best))
        shared = {"val_split": self.config.val_split, "val_segments": len(self.validation_segments),
                  "val_gIoU": {"model.pt": scores[best], "model_peer.pt": scores[1 - best]},
                  "seeds": {"model.pt": self.config.seed + best, "model_peer.pt": self.config.seed + 1 - best}}
        return [("model.pt", models[best], {"coteaching": dict(shared, role="model.pt")}),
                ("model_peer.pt", models[1 - best], {"coteaching": dict(shared, role="model_peer.pt")})]

    def state_dict(self):
        return {"selection": self.selection}

    def load_state_dict(self, state):
        self.selection = state["selection"]


STRATEGY_CLASSES = {cls.name: cls for cls in (Strategy, SCE, GCE, APL, CoTeaching, ELR, NPN)}


def build_strategy(config, world: int = 1) -> Strategy:
    name = config.loss.strategy
    if name not in STRATEGY_CLASSES:
        raise ValueError("loss.strategy %r is not one of %s" % (name, sorted(STRATEGY_CLASSES)))
    if world > 1 and name in SINGLE_PROCESS:
        raise ValueError("loss.strategy %s keeps per-clip state (or a second model) and runs single-process only, "
                         "not under torchrun with %d processes" % (name, world))
    return STRATEGY_CLASSES[name](config)
