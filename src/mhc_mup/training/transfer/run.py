"""One run of a transfer sweep: train the model of a :class:`~mhc_mup.training.transfer.config.RunSpec` and return
its record (a JSON-safe dict, :data:`RUN_FORMAT`).

Stages: build the model, optimizer and schedule; train (eagerly, or each step one CUDA graph replay:
:mod:`mhc_mup.training.graphed`), copying the losses to the host every :data:`CHECK_EVERY` steps to check for
divergence (a training loss not finite or above ``divergence_factor`` × the first) and measuring the validation
loss every ``eval_every`` steps; measure the final validation loss (divergence again); assemble the record.
Training batches depend only on ``(data_seed, seed)`` and the validation batches only on ``data_seed``, so every
learning rate and width of a seed sees the same data (the parabola compares like with like). At its start and end
a run records, on the first validation batch, how large its attention and output logits are
(:mod:`~mhc_mup.training.transfer.logits`) and, for an mHC model, what its routing does
(:mod:`~mhc_mup.training.transfer.routing`); every run records its wall time by stage (``stage_seconds``).
:func:`run_stages` is the same run as a generator that pauses before each sync, so that several runs can share a
GPU from one thread (:mod:`~mhc_mup.training.transfer.executors`), each resumption under the run's attention
setting; :func:`execute_run` runs it to the end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.optim.lr_scheduler import LambdaLR

from mhc_mup._device import device_label
from mhc_mup._io import json_safe, shortest_float32, software_versions
from mhc_mup.errors import TransferError
from mhc_mup.kernels import fused
from mhc_mup.training.data import Corpus, sample_batch, sample_windows
from mhc_mup.training.graphed import GraphedSteps, compiled, graph_ready_optimizer, lr_table
from mhc_mup.training.model import MHCLM, attention_backends, stream_probe
from mhc_mup.training.step import eval_batch_losses, eval_loss, train_step
from mhc_mup.training.transfer.config import RunRecipe, RunSpec
from mhc_mup.training.transfer.logits import logit_stats
from mhc_mup.training.transfer.routing import routing_stats
from mhc_mup.training.width_rules import make_optimizer

__all__ = ["CHECK_EVERY", "RUN_FORMAT", "execute_run", "lr_factor", "mhc_kernels", "resume", "run_stages"]

RUN_FORMAT = "mhc-mup-transfer-run/1"
CHECK_EVERY = 10  # training losses are copied to the host (a sync) and checked for divergence every this many steps

Batch = tuple[torch.Tensor, torch.Tensor]


def lr_factor(step: int, steps: int, warmup: float) -> float:
    """Multiplier of every group's LR at optimizer step ``step`` (0-based): ``(step+1)/w`` during the
    ``w = round(warmup·steps)`` warmup steps, then ``0.1 + 0.9·(1 + cos(π·p))/2`` with ``p`` the fraction of
    the remaining steps done."""
    w = round(warmup * steps)
    if step < w:
        return (step + 1) / w
    rest = max(1, steps - w - 1)
    p = min(1.0, (step - w) / rest)
    return 0.1 + 0.9 * (1 + math.cos(math.pi * p)) / 2


def mhc_kernels(model: MHCLM, device: torch.device) -> str:
    """Which implementation ran the model's mHC sublayers: 'triton' (fused), 'reference', or 'none' (control)."""
    if not model.config.hc:
        return "none"
    streams = stream_probe(model.config.n_s, model.config.d, model.config.stream_dtype, device)
    return "triton" if fused.use_triton(model.kernels, streams) else "reference"


@dataclass
class _Trace:
    """What training has seen so far: the training losses on the host, the validation curve
    ``[[step, loss], …]``, the final validation loss of each validation batch, why the run diverged (``""``
    while it has not), the seconds spent training, of them the first step's (lazy set-up and kernel compilation
    show there), and the seconds of the validations during training."""

    train_losses: list[float] = field(default_factory=list)
    val_curve: list[list] = field(default_factory=list)
    final_val_batches: list[float] = field(default_factory=list)
    reason: str = ""
    train_seconds: float = 0.0
    first_step_seconds: float = 0.0
    eval_seconds: float = 0.0

    @property
    def initial(self) -> float:
        return self.train_losses[0] if self.train_losses else math.nan


class _EagerSteps:
    """The eager loop's steps: a batch from the generator, :func:`train_step`, the schedule's step. The optimizer
    starts at the run's base LR with the swept multiplier in place
    (:class:`~mhc_mup.training.transfer.hyper.SweptValue`)."""

    def __init__(self, model: MHCLM, spec: RunSpec, corpus: Corpus, dev: torch.device) -> None:
        s, train = spec.settings, spec.settings.recipe.train
        self.model, self.corpus, self.train, self.dev = model, corpus, train, dev
        self.opt = make_optimizer(model, train.optimizer, s.sweep.run_lr(spec.lr, spec.width))
        s.sweep.apply(model, self.opt, spec.lr)  # the swept multiplier, before the schedule reads the group LRs
        self.sched = LambdaLR(self.opt, lambda k: lr_factor(k, train.steps, s.recipe.warmup))
        self.gen = _training_generator(spec)
        self.pending: list[torch.Tensor] = []
        self.captured, self.fallback, self.capture_seconds = False, "", 0.0

    def advance(self) -> None:
        x, y = sample_batch(self.corpus.train, self.train.batch_size, self.train.seq_len, self.gen)
        self.pending.append(train_step(self.model, self.opt, x, y, self.dev))
        self.sched.step()

    def take_losses(self) -> list[float]:
        new = torch.stack(self.pending).float().cpu().tolist()
        self.pending.clear()
        return new


def _graphed_steps(model: MHCLM, spec: RunSpec, corpus: Corpus, dev: torch.device) -> GraphedSteps:
    """The same steps, each one CUDA graph replay: the same batches (drawn up front from the same generator) and
    the same schedule (a device table); the model ``torch.compile``'d with ``torch_compile`` (its first steps,
    stage ``first_step``, compile it)."""
    s, train = spec.settings, spec.settings.recipe.train
    gen = _training_generator(spec)
    windows = [sample_windows(corpus.train, train.batch_size, train.seq_len, gen) for _ in range(train.steps)]
    opt = graph_ready_optimizer(model, train.optimizer, s.sweep.run_lr(spec.lr, spec.width))
    s.sweep.apply(model, opt, spec.lr)
    lrs = lr_table(opt, lambda k: lr_factor(k, train.steps, s.recipe.warmup), train.steps)
    net = compiled(model, s.numerics.attention) if s.numerics.torch_compile else model
    return GraphedSteps(net, opt, torch.stack(windows).to(dev), lrs)


Steps = _EagerSteps | GraphedSteps


def _training_generator(spec: RunSpec) -> torch.Generator:
    return torch.Generator().manual_seed(1_000_003 * spec.settings.recipe.train.data_seed + spec.seed)


class _Stopwatch:
    """Wall seconds per stage of a run, each stage ended by :meth:`lap` after a device sync (so that a stage's
    queued GPU work is counted in it)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        """End the current stage, named ``stage`` (a stage named twice adds up)."""
        _sync(self.device)
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now


def execute_run(spec: RunSpec, device: str) -> dict:
    """Train one grid point on ``device`` and return its record. Top-level and picklable with its argument:
    the process pool and Ray call it."""
    stages = run_stages(spec, device)
    while (record := resume(stages)) is None:
        pass
    return record


def resume(stages: Generator[None, None, dict]) -> dict | None:
    """Run :func:`run_stages` to its next pause; its record once the run has finished."""
    try:
        next(stages)
    except StopIteration as finished:
        return finished.value
    return None


def run_stages(spec: RunSpec, device: str) -> Generator[None, None, dict]:
    """:func:`execute_run` as a generator that pauses (yields) between its stages and before each of training's
    syncs (loss checks, validations), and returns the record: several runs on one GPU can take turns from one
    thread, each on its own CUDA stream, so that one run's steps run while another waits for its losses or
    builds its model. Work is queued on the current stream at each resumption.

    Each resumption runs inside the run's attention setting (:func:`~mhc_mup.training.model.attention_backends`),
    entered when it starts and left when it pauses: every stage runs under it (the build, the eager warm-up steps,
    the capture of the CUDA graph, whose kernels are those chosen then, the replays, the validations, the first
    call of a compiled model, which traces it), whoever resumes the run, and a run taking turns with others never
    leaves its setting to them or finds theirs (the flags are the process's, not the stream's)."""
    return _under_attention(spec.settings.numerics.attention, _stages(spec, device))


def _under_attention(attention: str, stages: Generator[None, None, dict]) -> Generator[None, None, dict]:
    """``stages``, each resumption inside ``attention_backends(attention)``; closing this closes ``stages``."""
    try:
        while True:
            with attention_backends(attention):
                record = resume(stages)
            if record is not None:
                return record
            yield
    finally:
        stages.close()


def _stages(spec: RunSpec, device: str) -> Generator[None, None, dict]:
    """:func:`run_stages`' stages, under whatever attention setting is in force at each resumption."""
    start = time.perf_counter()
    dev = torch.device(device)
    recipe = spec.settings.recipe
    clock = _Stopwatch(dev)
    corpus = _sweep_corpus(spec)
    model = _build_model(spec, dev)
    clock.lap("build")
    yield
    graphs = spec.settings.numerics.cuda_graphs == "on" and dev.type == "cuda"
    steps = _graphed_steps(model, spec, corpus, dev) if graphs else _EagerSteps(model, spec, corpus, dev)
    val_batches = _validation_batches(corpus, recipe)
    clock.lap("prepare")
    probe = val_batches[0][0].to(dev)
    probes = {"routing_init": routing_stats(model, probe), "logits_init": logit_stats(model, probe)}
    clock.lap("routing")
    trace = yield from _train(model, steps, spec, val_batches, dev)
    clock.lap("train")
    final_val = _final_validation(model, val_batches, trace, recipe.divergence_factor, dev)
    clock.lap("final_validation")
    probes |= {"routing": routing_stats(model, probe), "logits": logit_stats(model, probe)}
    clock.lap("routing")
    return _record(spec, trace, final_val, model, steps, corpus, dev, start, clock) | json_safe(probes)


def _sweep_corpus(spec: RunSpec) -> Corpus:
    """The sweep's corpus as this machine reads it; :class:`TransferError` if its bytes are not the sweep's (another
    machine's default corpus, or files changed since the sweep began): runs on other data must not be mixed."""
    corpus = spec.settings.recipe.read_corpus()
    if corpus.sha256 != spec.settings.corpus_sha256:
        raise TransferError(
            f"corpus '{corpus.source}' here has sha256 {corpus.sha256[:12]}, the sweep's is "
            f"{spec.settings.corpus_sha256[:12]}: runs on other data cannot join this sweep"
        )
    return corpus


def _build_model(spec: RunSpec, dev: torch.device) -> MHCLM:
    """The model at the spec's width and seed."""
    s, cfg = spec.settings, spec.configuration
    model_cfg = s.model.model_config(spec.width, hc=cfg.hc, stream_dtype=s.numerics.stream_dtype)
    return MHCLM(model_cfg, cfg.width_param(s.base_d), seed=spec.seed, kernels=s.numerics.kernels).to(dev)


def _validation_batches(corpus: Corpus, recipe: RunRecipe) -> list[Batch]:
    train = recipe.train
    gen = torch.Generator().manual_seed(2_000_003 + train.data_seed)
    return [sample_batch(corpus.val, train.batch_size, train.seq_len, gen) for _ in range(recipe.eval_batches)]


def _train(
    model: MHCLM, steps: Steps, spec: RunSpec, val_batches: list[Batch], dev: torch.device
) -> Generator[None, None, _Trace]:
    """``steps`` training steps, stopping at the first divergence; the validation loss every ``eval_every``
    steps (its time is left out of ``train_seconds``). Yields before each sync: the steps queued so far run
    while other runs take their turn."""
    recipe = spec.settings.recipe
    total = recipe.train.steps
    trace = _Trace()
    _sync(dev)
    t0 = time.perf_counter()
    for done in range(1, total + 1):
        steps.advance()
        if done % CHECK_EVERY == 0 or done == total or done == 1:
            yield
            _check_training_losses(trace, steps.take_losses(), done, recipe.divergence_factor)
            if done == 1:
                trace.first_step_seconds = time.perf_counter() - t0  # take_losses synced
            if trace.reason:
                break
        if recipe.eval_every and done % recipe.eval_every == 0 and done < total:
            yield
            _sync(dev)
            t_eval = time.perf_counter()
            trace.train_seconds += t_eval - t0
            trace.val_curve.append([done, eval_loss(model, val_batches, dev)])
            t0 = time.perf_counter()
            trace.eval_seconds += t0 - t_eval
    _sync(dev)
    trace.train_seconds += time.perf_counter() - t0
    return trace


def _check_training_losses(trace: _Trace, new: list[float], done: int, factor: float) -> None:
    """Append the losses just copied to the host and set ``trace.reason`` at the first diverged one."""
    trace.train_losses += new
    bad = next((v for v in new if _diverged(v, factor * trace.initial)), None)
    if bad is not None:
        trace.reason = f"training loss {bad:.4g} at step ≤ {done}: {_why(bad, factor)}"


def _final_validation(model: MHCLM, val_batches: list[Batch], trace: _Trace, factor: float, dev: torch.device) -> float:
    """The final validation loss, the mean of ``trace.final_val_batches`` (NaN for a run that diverged in
    training); a diverged one sets ``trace.reason``."""
    if trace.reason:
        return math.nan
    per_batch = eval_batch_losses(model, val_batches, dev)
    final_val = float(per_batch.mean().cpu())  # as eval_loss forms it
    trace.final_val_batches = per_batch.cpu().tolist()
    trace.val_curve.append([len(trace.train_losses), final_val])
    if _diverged(final_val, factor * trace.initial):
        trace.reason = f"final validation loss {final_val:.4g}: {_why(final_val, factor)}"
    return final_val


def _diverged(loss: float, limit: float) -> bool:
    return not math.isfinite(loss) or loss > limit


def _why(loss: float, factor: float) -> str:
    return "not finite" if not math.isfinite(loss) else f"above {factor:g}× the first"


def _record(
    spec: RunSpec,
    trace: _Trace,
    final_val: float,
    model: MHCLM,
    steps: Steps,
    corpus: Corpus,
    dev: torch.device,
    start: float,
    clock: _Stopwatch,
) -> dict:
    """The run's JSON-safe record: grid point, settings, curves, final losses, cost and provenance (``step``:
    ``"cuda-graph"`` or ``"eager"``; ``cuda_graph_fallback``: why a step asked to be captured was not;
    ``stage_seconds``: where the run's wall time went)."""
    train = spec.settings.recipe.train
    ok = not trace.reason
    steps_done = len(trace.train_losses)
    tail = trace.train_losses[-max(1, train.steps // 10) :]
    tokens = steps_done * train.batch_size * train.seq_len
    kernels, versions = mhc_kernels(model, dev), software_versions()  # before the clock stops: part of "rest"
    seconds = time.perf_counter() - start
    return json_safe({
        "format": RUN_FORMAT,
        "config": spec.configuration.name,
        "configuration": spec.configuration.to_dict(),
        "width": spec.width,
        "seed": spec.seed,
        "lr": spec.settings.sweep.run_lr(spec.lr, spec.width),
        "log2_lr": math.log2(spec.settings.sweep.run_lr(spec.lr, spec.width)),
        "hyper": spec.settings.sweep.hyper,
        "value": spec.lr,
        "settings": spec.settings.identity(),
        "train_loss": shortest_float32(trace.train_losses),
        "val_curve": trace.val_curve,
        "initial_loss": trace.initial,
        "final_train_loss": float(np.mean(tail)) if ok else math.nan,
        "final_val_loss": final_val if ok else math.nan,
        "final_val_batch_losses": shortest_float32(trace.final_val_batches) if ok else [],
        "diverged": not ok,
        "diverged_reason": trace.reason,
        "steps_done": steps_done,
        "tokens_per_s": tokens / trace.train_seconds if trace.train_seconds > 0 else None,
        "train_seconds": trace.train_seconds,
        "seconds": seconds,
        "stage_seconds": _stage_seconds(clock, trace, steps.capture_seconds, seconds),
        "device": device_label(dev),
        "mhc_kernels": kernels,
        "step": "cuda-graph" if steps.captured else "eager",
        "cuda_graph_fallback": steps.fallback,
        "n_params": model.num_parameters(),
        "corpus": corpus.describe(),
        "versions": versions,
    })  # fmt: skip


def _stage_seconds(clock: _Stopwatch, trace: _Trace, capture: float, seconds: float) -> dict[str, float]:
    """The run's ``seconds`` by stage: ``build`` (corpus and model), ``prepare`` (optimizer, schedule, batches),
    ``routing`` (the routing and logit probes at the start and the end), ``first_step`` (the first training
    step), ``capture`` (capturing the step as a CUDA graph and its first replay), ``steps`` (the other steps),
    ``eval`` (every validation) and the ``rest`` (assembling the record)."""
    s = clock.seconds
    steps = trace.train_seconds - trace.first_step_seconds - capture
    stages = {
        "build": s["build"], "prepare": s["prepare"], "routing": s["routing"],
        "first_step": trace.first_step_seconds, "capture": capture, "steps": steps,
        "eval": trace.eval_seconds + s["final_validation"],
    }  # fmt: skip
    return stages | {"rest": seconds - sum(stages.values())}


def _sync(device: torch.device) -> None:
    """Wait for the work queued on this thread's current stream (not the whole device: runs sharing a GPU each
    have their own stream)."""
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()
