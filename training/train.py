"""The training loop (read it top to bottom). Single process by default; under torchrun it runs
DistributedDataParallel (gloo on CPU, nccl on CUDA), each rank on its share of every epoch.

Resuming is exact: the data order and every per-sample random choice are functions of (seed, epoch,
index), and checkpoints hold model, optimizer, scheduler, step counters and the torch RNG state. A run
killed at any moment loses at most `checkpoint_every` steps and then reaches the same final weights.
"""
from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import torch
from tqdm import tqdm

from . import checkpoint as ckpt
from .config import TrainConfig, to_dict
from .data import SegmentClips, collate_clips, epoch_order
from .modeling.actiseg_model import ActiSegModel
from .objective import compute_loss
from .prompts import PromptBank, encode_prompts


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
    named = list(model.segmenter.named_parameters())
    pretrained = [p for n, p in named if n.startswith("image_encoder.")]
    if config.model.text_trainable:
        pretrained += list(model.text_encoder.parameters())
    others = [p for n, p in named if not n.startswith("image_encoder.")]
    return torch.optim.AdamW([{"params": pretrained, "lr": config.lr_backbone}, {"params": others, "lr": config.lr}],
                             weight_decay=config.weight_decay)


def lr_milestones(config: TrainConfig, steps_per_epoch: int) -> list:
    return [epoch * steps_per_epoch for epoch in config.lr_drop_epochs]


def train(config: TrainConfig, out_dir, resume: bool = False, log=print) -> Path:
    """Train to completion (or max_steps); returns the path of the final weights file."""
    out_dir = Path(out_dir)
    rank, world, device = distributed_context()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)

    dataset = SegmentClips(config.data_root, config.train_split, config.model.input_hw, config.frames_per_clip,
                           config.jitter, config.seed, config.skip_bad)
    for skipped in dataset.skipped:
        log("skipped %s: %s" % (skipped.path, skipped.reason))
    model = ActiSegModel(config.model).to(device)
    bank = PromptBank(model.text_encoder)
    if not config.model.text_trainable:
        bank.add(dataset.prompts())
    segmenter = model.segmenter
    if world > 1 and config.model.text_trainable:
        raise ValueError("text-encoder fine-tuning runs single-process only (its gradients are not synchronised)")
    if world > 1:
        # Auxiliary heads frozen on a step leave their parameters without gradient.
        segmenter = torch.nn.parallel.DistributedDataParallel(segmenter, find_unused_parameters=True)
    optimizer = build_optimizer(model, config)

    steps_per_epoch = len(epoch_order(len(dataset), config.seed, 0, rank, world)) // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError("batch_size %d is larger than this rank's %d clips" % (config.batch_size, len(dataset) // world))
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, lr_milestones(config, steps_per_epoch),
                                                     gamma=config.lr_drop_factor)
    state = {"step": 0}
    if resume and ckpt.latest_path(out_dir).is_file():
        state = ckpt.load_training_state(ckpt.latest_path(out_dir), model, optimizer, scheduler)
        log("resumed from step %d" % state["step"])
    step = state["step"]

    out_dir.mkdir(parents=True, exist_ok=True)
    log_file = out_dir / "train_log.csv"
    writer_handle = open(log_file, "a", newline="") if rank == 0 else None
    writer = csv.writer(writer_handle) if writer_handle else None
    if writer and step == 0:
        writer.writerow(["step", "epoch", "lr", "total", "mask", "positive", "seconds"])

    progress_bar = tqdm(total=total_steps, initial=step, desc="train", disable=rank != 0, dynamic_ncols=True)
    model.train()
    started = time.monotonic()
    while step < total_steps:
        epoch, step_in_epoch = divmod(step, steps_per_epoch)
        dataset.set_epoch(epoch)
        order = epoch_order(len(dataset), config.seed, epoch, rank, world)
        start = step_in_epoch * config.batch_size
        batch = collate_clips([dataset[i] for i in order[start:start + config.batch_size]])
        b, t = batch["images"].shape[:2]
        k = batch["valid"].shape[1]
        if config.model.text_trainable:
            tokens, mask = encode_prompts(model.text_encoder, bank.tokenizer, batch["prompts"], k)
        else:
            tokens, mask = bank.lookup(batch["prompts"], k)
        # Every frame of a clip is queried with the clip's K prompts: (B*T, K, L, 384).
        tokens = tokens.unsqueeze(1).expand(b, t, *tokens.shape[1:]).reshape(b * t, *tokens.shape[1:])
        mask = mask.unsqueeze(1).expand(b, t, *mask.shape[1:]).reshape(b * t, *mask.shape[1:])
        batch = {key: value.to(device) if torch.is_tensor(value) else value for key, value in batch.items()}
        outputs = segmenter(batch["images"].flatten(0, 1), tokens.to(device), mask.to(device),
                            with_aux=config.loss.pmhm)
        loss, parts = compute_loss(outputs, batch, config, progress=step / max(1, total_steps - 1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], config.grad_clip)
        optimizer.step()
        scheduler.step()
        step += 1
        progress_bar.update(1)
        progress_bar.set_postfix(loss="%.3f" % parts["total"].item(), epoch=epoch)
        if writer and (step % config.log_every == 0 or step == total_steps):
            writer.writerow([step, epoch, "%.3g" % optimizer.param_groups[1]["lr"], "%.5f" % parts["total"].item(),
                             "%.5f" % parts["mask"].item(), "%.5f" % parts["positive"].item(),
                             "%.1f" % (time.monotonic() - started)])
            writer_handle.flush()
        epoch_end = step % steps_per_epoch == 0
        if rank == 0 and (step % config.checkpoint_every == 0 or epoch_end or step == total_steps):
            ckpt.save_training_state(ckpt.latest_path(out_dir), model, optimizer, scheduler, step,
                                     to_dict(config))
    progress_bar.close()
    if writer_handle:
        writer_handle.close()
    final = out_dir / "model.pt"
    if rank == 0:
        ckpt.save_weights(final, model, to_dict(config),
                          {"steps": step, "train_seconds": round(time.monotonic() - started, 1), "world_size": world})
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return final
