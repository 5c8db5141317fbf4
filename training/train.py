"""The training loop (read it top to bottom). Single process by default; under torchrun it runs
DistributedDataParallel (gloo on CPU, nccl on CUDA), each rank on its share of every epoch.

The label-noise-learning strategy (strategies.py) decides which clips each model trains on at a step
(co-teaching trains two models) and the loss; everything else is this loop.

Resuming is exact: the data order and every per-sample random choice are functions of (seed, epoch,
index), and checkpoints hold models, optimizers, schedulers, step counters, the strategy's state and the
torch RNG state. A run killed at any moment loses at most `checkpoint_every` steps and then reaches the
same final weights.
"""
from __future__ import annotations

import contextlib
import csv
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from . import checkpoint as ckpt
from .config import TrainConfig, to_dict
from .data import collate_clips, epoch_order, training_clips
from .feature_cache import FeatureCache, add_prompts_cached
from .modeling.actiseg_model import ActiSegModel
from .prompts import PromptBank, encode_prompts
from .schedule import EpochSchedule
from .strategies import StepContext, build_strategy


def distributed_context() -> tuple:
    """(rank, world size, device); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = torch.device("cpu")
    if world > 1:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        torch.distributed.init_process_group(backend)
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    return rank, world, device


def build_optimizer(model, config: TrainConfig):
    """Pretrained parts (image backbone, and the text encoder when fine-tuned) learn at lr_backbone."""
    named = [(n, p) for n, p in model.segmenter.named_parameters() if p.requires_grad]
    pretrained = [p for n, p in named if n.startswith("image_encoder.")]
    if config.model.text_trainable:
        pretrained += list(model.text_encoder.parameters())
    others = [p for n, p in named if not n.startswith("image_encoder.")]
    return torch.optim.AdamW([{"params": pretrained, "lr": config.lr_backbone}, {"params": others, "lr": config.lr}],
                             weight_decay=config.weight_decay)


class TrainSetupError(ValueError):
    """The run cannot start with this data and configuration; the message says what to change."""


@dataclass
class Member:
    """One trained model with its prompt features, optimiser and LR schedule (co-teaching trains two)."""

    model: ActiSegModel
    segmenter: torch.nn.Module  # model.segmenter, DDP-wrapped under torchrun
    bank: PromptBank
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler


def build_member(config: TrainConfig, dataset, device, world: int, milestones: list) -> Member:
    model = ActiSegModel(config.model).to(device)
    bank = PromptBank(model.text_encoder)
    if not config.model.text_trainable:
        if config.feature_cache:
            add_prompts_cached(bank, dataset.prompts(), config.feature_cache)
        else:
            bank.add(dataset.prompts())
    segmenter = model.segmenter
    if world > 1:
        # Auxiliary heads frozen on a step leave their parameters without gradient.
        segmenter = torch.nn.parallel.DistributedDataParallel(segmenter, find_unused_parameters=True)
    optimizer = build_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=config.lr_drop_factor)
    return Member(model, segmenter, bank, optimizer, scheduler)


def collate_indices(dataset, indices: list, pool=None) -> dict:
    """The collated clips of `indices` (on the CPU); with a thread pool, its threads load the samples (decoding
    and resizing release the GIL; each sample's random draws are keyed by its index, so the batch is the same)."""
    samples = list(pool.map(dataset.__getitem__, indices)) if pool is not None else [dataset[i] for i in indices]
    return collate_clips(samples)


def autocast(config: TrainConfig, device):
    """Mixed precision for forward and loss (`precision`: bf16 or fp16); fp32 runs as before."""
    if config.precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if config.precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def load_batch(dataset, indices: list, device, cache=None, collated: dict | None = None) -> dict:
    """The collated clips on `device`; with a FeatureCache, plus "features": the backbone's maps of the B*T
    frames (read from the cache, or computed and stored), which the model then uses instead of its backbone.
    `collated`: the clips already loaded (by the loader threads, one step ahead)."""
    batch = collated if collated is not None else collate_indices(dataset, indices)
    batch = {key: value.to(device) if torch.is_tensor(value) else value for key, value in batch.items()}
    if cache is not None:
        batch["features"] = cache.features(batch["image_files"], batch["images"].flatten(0, 1))
    return batch


def make_forward(member: Member, batch: dict, config: TrainConfig):
    """-> forward(images (B, T, 3, H, W), with_aux) -> model outputs over the B*T frames of the batch."""
    b, t = batch["images"].shape[:2]
    k = batch["valid"].shape[1]
    if config.model.text_trainable:
        tokens, mask = encode_prompts(member.model.text_encoder, member.bank.tokenizer, batch["prompts"], k)
    else:
        tokens, mask = member.bank.lookup(batch["prompts"], k)
    # Every frame of a clip is queried with the clip's K prompts: (B*T, K, L, 384).
    device = batch["images"].device
    tokens = tokens.unsqueeze(1).expand(b, t, *tokens.shape[1:]).reshape(b * t, *tokens.shape[1:]).to(device)
    mask = mask.unsqueeze(1).expand(b, t, *mask.shape[1:]).reshape(b * t, *mask.shape[1:]).to(device)

    def forward(images, with_aux: bool = config.loss.pmhm):
        # Cached backbone features belong to the batch's own images, not to another view of them (NPN's
        # strong photometric view goes through the backbone).
        features = batch.get("features") if images is batch["images"] else None
        return member.segmenter(images.flatten(0, 1), tokens, mask, with_aux=with_aux, features=features)

    return forward


# PMHM's loss terms and diagnostics in the training log (pmhm_loss.pmhm_mask_loss parts, unweighted); empty
# columns while PMHM is off or warming up. training/configs/README.md says what each one is.
PMHM_LOG_COLUMNS = ("focal", "dice", "tversky", "head_consistency", "layer_consistency", "tversky_alpha",
                    "reliable_fraction", "uncertain_fraction", "fg_in_reliable", "fg_in_uncertain", "head_iou",
                    "head_prob_diff")


def pmhm_log_values(parts: dict) -> list:
    values = [parts.get("pmhm_" + name) for name in PMHM_LOG_COLUMNS]
    return ["" if value is None else "%.5g" % value.item() for value in values]


def update(member: Member, loss: torch.Tensor, config: TrainConfig, scaler=None) -> None:
    """One optimiser step; with fp16's gradient scaler the gradients are unscaled before clipping."""
    member.optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
    else:
        scaler.scale(loss).backward()
        scaler.unscale_(member.optimizer)
    if config.grad_clip:
        parameters = [p for g in member.optimizer.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
    if scaler is None:
        member.optimizer.step()
    else:
        scaler.step(member.optimizer)
        scaler.update()
    member.scheduler.step()


def train(config: TrainConfig, out_dir, resume: bool = False, log=print) -> Path:
    """Train to completion (or max_steps); returns the path of the final weights file."""
    out_dir = Path(out_dir)
    rank, world, device = distributed_context()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    if config.precision == "fp16" and device.type != "cuda":
        raise TrainSetupError("precision fp16 needs a CUDA device (its gradient scaler is CUDA's); on a CPU use "
                              "precision bf16 or fp32")
    scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None

    dataset = training_clips(config)
    for skipped in dataset.skipped:
        log("skipped %s: %s" % (skipped.path, skipped.reason))
    if world > 1 and config.model.text_trainable:
        raise TrainSetupError("text-encoder fine-tuning runs single-process only (its gradients are not "
                              "synchronised)")
    strategy = build_strategy(config, world)
    clips = len(epoch_order(len(dataset), config.seed, 0, rank, world))
    steps_per_epoch = [strategy.steps_in_epoch(epoch, clips, config.batch_size) for epoch in range(config.epochs)]
    if min(steps_per_epoch) == 0:
        raise TrainSetupError("batch_size %d is larger than this rank's %d clips (%s split %s has %d): set a smaller "
                              "batch_size (--set batch_size=N) or add data"
                              % (config.batch_size, clips, config.data_root, config.train_split, len(dataset)))
    schedule = EpochSchedule(steps_per_epoch, config.max_steps)
    milestones = schedule.milestones(config.lr_drop_epochs)
    members = [build_member(config, dataset, device, world, milestones)]
    for extra in range(1, strategy.members):
        with torch.random.fork_rng(devices=[]):  # the peer's own initial weights; the run's RNG stream goes on
            torch.manual_seed(config.seed + extra)
            members.append(build_member(config, dataset, device, world, milestones))
    state = {"step": 0}
    resuming = resume and ckpt.latest_path(out_dir).is_file()
    if config.init_from and not resuming:
        initial = ckpt.read_init_weights(config.init_from, config.model)["model"]
        for member in members:  # co-teaching's peer starts from the same weights; its batches differ
            ckpt.load_model_state(member.model, initial)
        log("initialised from %s" % config.init_from)
    if config.loss.pmhm and config.loss.pmhm_reset_aux and not resuming:
        for member in members:  # spec section 6: the auxiliary heads start as copies of the main head + N(0, 1e-3)
            member.model.segmenter.aux_heads.reset_from(member.model.segmenter.decoder.mask_head)
        log("PMHM auxiliary heads re-copied from the main head")
    if resuming:
        state = ckpt.load_training_state(ckpt.latest_path(out_dir), members, strategy)
        log("resumed from step %d" % state["step"])
    step = state["step"]
    # After init_from and resume: the cache folder is keyed by the backbone weights the run really uses.
    caches = [FeatureCache(config.feature_cache, m.model.segmenter.image_encoder, config.model.input_hw,
                           config.model.backbone) if config.feature_cache else None for m in members]

    def score(member_index: int, indices: list) -> tuple:
        """A model's outputs on a batch without gradient, in eval mode (no BN update, no random draws)."""
        member = members[member_index]
        batch = load_batch(dataset, indices, device, caches[member_index])
        member.model.eval()
        with torch.no_grad(), autocast(config, device):
            outputs = make_forward(member, batch, config)(batch["images"], with_aux=False)
        member.model.train()
        return outputs, batch

    out_dir.mkdir(parents=True, exist_ok=True)
    log_file = out_dir / "train_log.csv"
    # the loaders' threads, the log file and the progress bar end with the loop, also when a step raises
    with contextlib.ExitStack() as resources:
        pool = (resources.enter_context(ThreadPoolExecutor(config.loader_workers))
                if config.loader_workers > 0 else None)
        # fills the next step's batch from the pool
        ahead = resources.enter_context(ThreadPoolExecutor(1)) if pool is not None else None
        writer_handle = resources.enter_context(open(log_file, "a", newline="")) if rank == 0 else None
        writer = csv.writer(writer_handle) if writer_handle else None
        if writer and step == 0:
            writer.writerow(["step", "epoch", "lr", "total", "mask", "positive", "object", "seconds"]
                            + ["pmhm_" + name for name in PMHM_LOG_COLUMNS])

        total_steps = schedule.total_steps
        progress_bar = resources.enter_context(tqdm(total=total_steps, initial=step, desc="train",
                                                    disable=rank != 0, dynamic_ncols=True))
        for member in members:
            member.model.train()
        started = time.monotonic()
        upcoming = None  # (indices, future) of the next step's batch, being loaded while this step computes
        while step < total_steps:
            epoch, step_in_epoch = schedule.locate(step)
            dataset.set_epoch(epoch)
            order = epoch_order(len(dataset), config.seed, epoch, rank, world)
            context = StepContext(progress=step / max(1, total_steps - 1), epoch=epoch, step=step)
            if config.loss.pmhm and step_in_epoch == 0 and epoch == config.loss.pmhm_warmup_epochs > 0:
                for member in members:  # PMHM starts now: its auxiliary heads become copies of the trained main head
                    segmenter = member.model.segmenter
                    segmenter.aux_heads.reset_from(segmenter.decoder.mask_head)
            logged = None  # the first model's loss parts
            planned = strategy.batches(epoch, step_in_epoch, order, config.batch_size, score)
            prefetched = upcoming or (None, None)
            upcoming = None
            if ahead is not None and strategy.members == 1 and step + 1 < total_steps:
                next_epoch, next_in_epoch = schedule.locate(step + 1)
                if next_epoch == epoch:  # same epoch: same order and the same set_epoch() for the samples
                    next_indices = strategy.batches(epoch, next_in_epoch, order, config.batch_size, score)[0]
                    upcoming = (list(next_indices), ahead.submit(collate_indices, dataset, list(next_indices), pool))
            for member, cache, indices in zip(members, caches, planned):
                if prefetched[0] is not None and prefetched[0] == list(indices):
                    collated = prefetched[1].result()
                else:
                    collated = collate_indices(dataset, list(indices), pool)
                batch = load_batch(dataset, indices, device, cache, collated)
                with autocast(config, device):
                    loss, parts = strategy.loss(make_forward(member, batch, config), batch, context)
                update(member, loss, config, scaler)
                logged = logged or parts
            step += 1
            progress_bar.update(1)
            progress_bar.set_postfix(loss="%.3f" % logged["total"].item(), epoch=epoch)
            if writer and (step % config.log_every == 0 or step == total_steps):
                writer.writerow([step, epoch, "%.3g" % members[0].optimizer.param_groups[1]["lr"],
                                 "%.5f" % logged["total"].item(), "%.5f" % logged["mask"].item(),
                                 "%.5f" % logged["positive"].item(),
                                 "%.5f" % logged["object"].item() if "object" in logged else "",  # off: empty
                                 "%.1f" % (time.monotonic() - started)] + pmhm_log_values(logged))
                writer_handle.flush()
            if rank == 0 and (step % config.checkpoint_every == 0 or schedule.ends_epoch(step) or step == total_steps):
                ckpt.save_training_state(ckpt.latest_path(out_dir), members, step, to_dict(config),
                                         strategy.state_dict())
    final = out_dir / "model.pt"
    if rank == 0:
        info = {"steps": step, "train_seconds": round(time.monotonic() - started, 1), "world_size": world,
                "strategy": config.loss.strategy}
        for name, model, extra in strategy.final_models([m.model for m in members], log):
            ckpt.save_weights(out_dir / name, model, to_dict(config), dict(info, **extra))
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return final
