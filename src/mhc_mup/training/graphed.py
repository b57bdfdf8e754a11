"""Training steps replayed from one CUDA graph: forward, backward and the optimizer step of PyTorch's whole-network
capture, so that a step of a small model costs the GPU's time rather than the host's.

Everything a step reads or writes lives in device tensors, so a step is one graph replay with no host work:

- the batches of the whole run, drawn up front from the same generator as the eager loop: ``(steps, B, T+1)``
  bytes (inputs are the first ``T``, targets the last ``T``);
- each parameter group's learning rate at each step, ``(steps, G)`` (the schedule times the group's LR), copied
  into the optimizer's learning-rate tensors by the step itself;
- a step counter ``(1,)`` and the loss of every step ``(steps,)``.

The first :data:`WARMUP_STEPS` steps run eagerly, as PyTorch's documentation asks (they create the optimizer's
state, autograd's buffers and the stream's cuBLAS workspace). They are the run's real first steps, so nothing is
trained twice. The next step is captured, and every later step replays it. A step that cannot be captured is
reported (:attr:`GraphedSteps.fallback`) and the run goes on eagerly with the same step.

Every step of a run, eager, captured or replayed, runs on the run's own stream (:attr:`GraphedSteps.stream`),
never on PyTorch's default capture stream, which is one per process. cuBLAS keeps one workspace per stream, and a
captured graph keeps the address of the workspace of the stream it was captured on (pytorch/pytorch#193402):
graphs captured on one stream share a workspace, so two of them replaying at once on two streams (runs taking
turns on one GPU) write over each other's scratch data. In issue 20's sweep at d = 1024 such runs went NaN or
never finished; one at a time they trained.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import cast

import torch
import torch._dynamo
from torch import nn

from mhc_mup.training.step import lm_loss
from mhc_mup.training.width_rules import param_groups

__all__ = ["COMPILED_GRAPHS_PER_FORWARD", "WARMUP_STEPS", "GraphedSteps", "compiled", "graph_ready_optimizer",
           "lr_table"]  # fmt: skip

WARMUP_STEPS = 3
COMPILED_GRAPHS_PER_FORWARD = 64
"""How many compiled graphs of one ``forward`` Dynamo keeps (its ``recompile_limit``, 8 by default) while
:func:`compiled` is in use: a sweep compiles one per model kind and width, and past the limit Dynamo would run
the later ones uncompiled, silently."""


_traced_under = {"attention": "auto"}
"""The attention setting under which this process's compiled graphs were traced (:func:`compiled`)."""


def compiled(model: nn.Module, attention: str = "auto") -> nn.Module:
    """``torch.compile(model, dynamic=False)``: one graph per input shape and width, compiled at the first call,
    which must run under ``attention`` (:func:`~mhc_mup.training.model.attention_backends`). A new model of a kind
    and width already compiled in this process reuses its graph (parameters are inputs) under the same setting.
    A traced graph keeps the attention kernel chosen when it was traced, and Dynamo does not guard on the backend
    flags, so a graph traced under one setting would serve the other: a model compiled under another setting than
    the process's last one first drops every graph compiled in this process (``torch._dynamo.reset()``)."""
    if attention != _traced_under["attention"]:
        torch._dynamo.reset()
        _traced_under["attention"] = attention
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, COMPILED_GRAPHS_PER_FORWARD)
    return cast(nn.Module, torch.compile(model, dynamic=False))  # a module compiles to an OptimizedModule


def graph_ready_optimizer(model: nn.Module, optimizer: str, lr: float) -> torch.optim.Optimizer:
    """:func:`~mhc_mup.training.width_rules.param_groups` in an optimizer that a CUDA graph can replay:
    ``Adam(capturable=True)`` (its step count on the device) or ``SGD(fused=True)``, each group's learning rate a
    0-dim float32 tensor on the model's device. On the CPU, Adam is the single-tensor one (there is no
    capturable Adam there); the step is the same, run eagerly."""
    groups = param_groups(model, optimizer, lr)
    device = next(model.parameters()).device
    for g in groups:
        g["lr"] = torch.tensor(g["lr"], dtype=torch.float32, device=device)
    first = groups[0]["lr"]
    if optimizer == "adam":
        if device.type == "cuda":
            return torch.optim.Adam(groups, lr=first, capturable=True, foreach=True)
        return torch.optim.Adam(groups, lr=first, foreach=False)
    return torch.optim.SGD(groups, lr=first, fused=True)


def lr_table(opt: torch.optim.Optimizer, factor: Callable[[int], float], steps: int) -> torch.Tensor:
    """``(steps, G)`` float32 on the groups' device: group ``g``'s learning rate at step ``k``, ``lr_g·factor(k)``
    (``lr_g`` the group's rate now, products in float64 as LambdaLR forms them)."""
    base = torch.stack([g["lr"] for g in opt.param_groups]).double().cpu()
    factors = torch.tensor([factor(k) for k in range(steps)], dtype=torch.float64)
    return (factors[:, None] * base[None, :]).float().to(opt.param_groups[0]["lr"].device)


class GraphedSteps:
    """The training steps of one run: :meth:`advance` takes the next one (eager during warm-up, then one graph
    replay), :meth:`take_losses` copies the losses of the steps taken since the last call to the host.

    ``windows`` ``(steps, B, T+1)`` and ``lrs`` ``(steps, G)`` are on the model's device; ``opt`` comes from
    :func:`graph_ready_optimizer`. With ``capture=False`` (or off CUDA) every step runs eagerly. ``model`` is what
    the step calls (:func:`compiled` of the optimizer's model, say).
    """

    def __init__(
        self,
        model: nn.Module,
        opt: torch.optim.Optimizer,
        windows: torch.Tensor,
        lrs: torch.Tensor,
        *,
        capture: bool = True,
        warmup: int = WARMUP_STEPS,
    ) -> None:
        self.model, self.opt, self.windows, self.lrs = model, opt, windows, lrs
        self.device = windows.device
        self.capture = capture and self.device.type == "cuda"
        self.warmup = warmup
        self.rates = [g["lr"] for g in opt.param_groups]  # the 0-dim tensors the optimizer reads
        self.counter = torch.zeros(1, dtype=torch.long, device=self.device)
        self.losses = torch.zeros(windows.shape[0], dtype=torch.float32, device=self.device)
        self.taken = 0  # steps taken, on the host
        self.read = 0  # steps whose losses the host has
        self.graph: torch.cuda.CUDAGraph | None = None
        self.fallback = ""  # why the step was not captured, when it was asked to be
        self.capture_seconds = 0.0  # wall time of the capture and its first replay
        self.stream = _own_stream(self.device) if self.capture else None

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def advance(self) -> None:
        """Take the next step (queued on :attr:`stream`, which the current stream then waits for)."""
        with _on(self.stream, self.device):
            if self.graph is not None:
                self.graph.replay()
            elif self.capture and self.taken == self.warmup:
                self._sync()
                start = time.perf_counter()
                self._capture_and_replay()
                self._sync()
                self.capture_seconds = time.perf_counter() - start
            else:
                self._eager_step()
        self.taken += 1

    def take_losses(self) -> list[float]:
        """The losses of the steps taken since the last call, on the host (a sync)."""
        new = self.losses[self.read : self.taken].cpu().tolist()
        self.read = self.taken
        return new

    def _sync(self) -> None:
        """Wait for the run's own stream, which a captured step has (:func:`_own_stream`)."""
        assert self.stream is not None, "only a run that captures its step has a stream of its own"
        self.stream.synchronize()

    def _eager_step(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        self._step()

    def _step(self) -> None:
        """One step, reading and writing only device tensors: what is captured."""
        window = self.windows.index_select(0, self.counter).squeeze(0).long()
        row = self.lrs.index_select(0, self.counter).squeeze(0)
        for i, rate in enumerate(self.rates):
            rate.copy_(row[i])
        loss = lm_loss(self.model, window[:, :-1], window[:, 1:], self.device)
        loss.backward()
        self.opt.step()
        self.losses.index_copy_(0, self.counter, loss.detach().float().reshape(1))
        self.counter += 1

    def _capture_and_replay(self) -> None:
        """Capture the step (recording only: it does not run) and replay it once; eager on failure."""
        self.opt.zero_grad(set_to_none=True)  # backward then allocates the gradients from the graph's pool
        graph = torch.cuda.CUDAGraph()
        try:
            # thread-local: other threads' runs (sharing the GPU on their own streams) may sync meanwhile
            with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
                self._step()
        except RuntimeError as exc:
            self.fallback = _first_line(exc)
            self.capture = False
            self._sync()
            self._eager_step()
            return
        self.graph = graph
        graph.replay()


def _own_stream(device: torch.device) -> torch.cuda.Stream:
    """The stream a run's steps run on: the current one when the caller gave the run its own (a run taking turns
    with others), else a new one (capture cannot run on the default stream)."""
    current = torch.cuda.current_stream(device)
    return torch.cuda.Stream(device) if current == torch.cuda.default_stream(device) else current


@contextlib.contextmanager
def _on(stream: torch.cuda.Stream | None, device: torch.device) -> Iterator[None]:
    """Queue the block's work on ``stream`` (after the current stream's work; the current stream then waits for
    it), or on the current stream when ``stream`` is None or is the current stream."""
    if stream is None or stream == (current := torch.cuda.current_stream(device)):
        yield
        return
    stream.wait_stream(current)
    with torch.cuda.stream(stream):
        yield
    current.wait_stream(stream)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
