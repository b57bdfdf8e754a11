"""The training step shared by the coordinate check and the learning-rate transfer sweep.

One step is ``loss = CE(model(x), y)`` (mean next-byte cross-entropy in nats, computed in fp32),
``loss.backward()``, ``opt.step()``. On CUDA the forward pass runs under bf16 autocast (the model
keeps its mHC math in fp32, as V4 does); on CPU everything is fp32.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, nothing on CPU. Without autocast's cache of cast weights, which CUDA graph capture
    cannot hold and which saves nothing here: each weight is cast once per forward pass anyway."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False)
    return contextlib.nullcontext()


def precision_of(device: torch.device) -> str:
    """The name of the precision :func:`autocast_for` gives on ``device`` (recorded with every run)."""
    return "bf16-autocast" if device.type == "cuda" else "fp32"


def lm_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Mean cross-entropy of the next byte, ``(B, T)`` inputs and targets → scalar (fp32 logits)."""
    with autocast_for(device):
        logits = model(x)
        return F.cross_entropy(logits.float().flatten(0, 1), y.flatten())


def train_step(
    model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, device: torch.device
) -> torch.Tensor:
    """One optimizer step on the batch ``(x, y)`` (moved to ``device``); returns the detached loss (no sync)."""
    return descend(opt, lm_loss(model, x.to(device, non_blocking=True), y.to(device, non_blocking=True), device))


def descend(opt: torch.optim.Optimizer, loss: torch.Tensor) -> torch.Tensor:
    """``loss.backward()`` from fresh gradients, then ``opt.step()``; returns the detached loss (no sync)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def eval_loss(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device) -> float:
    """Mean loss over ``batches`` (equal-size batches: the mean of the batch means), model in eval mode."""
    return float(eval_batch_losses(model, batches, device).mean().cpu())


@torch.no_grad()
def eval_batch_losses(
    model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device
) -> torch.Tensor:
    """``(len(batches),)`` float32 on ``device``: each batch's mean loss, model in eval mode (no sync)."""
    was_training = model.training
    model.eval()
    try:
        return torch.stack([lm_loss(model, x.to(device), y.to(device), device) for x, y in batches]).float()
    finally:
        model.train(was_training)
