"""Graph-ready training steps: on the CPU the same step runs eagerly and must train exactly as the eager loop
(same batches, same schedule); on a GPU the captured run must match the eager one to bf16 round-off."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch.optim.lr_scheduler import LambdaLR

from mhc_mup.training.data import sample_windows
from mhc_mup.training.graphed import (
    COMPILED_GRAPHS_PER_FORWARD,
    WARMUP_STEPS,
    GraphedSteps,
    compiled,
    graph_ready_optimizer,
    lr_table,
)
from mhc_mup.training.model import MHCLM, ModelConfig, attention_backends
from mhc_mup.training.step import train_step
from mhc_mup.training.transfer.run import lr_factor
from mhc_mup.training.width_rules import WidthParameterization, make_optimizer

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: CUDA graph capture")


def model_and_windows(
    device: str, steps: int, d: int = 32, hc: bool = True, heads: int = 2
) -> tuple[MHCLM, torch.Tensor]:
    model = MHCLM(ModelConfig(d=d, depth=2, heads=heads, hc=hc), WidthParameterization("mup", base_d=16), seed=3)
    corpus = torch.frombuffer(bytearray(b"the quick brown fox jumps over the lazy dog; " * 90), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(11)
    windows = torch.stack([sample_windows(corpus, 4, 32, gen) for _ in range(steps)])
    return model.to(device), windows.to(device)


def schedule(steps: int):
    return lambda k: lr_factor(k, steps, 0.1)


def eager_run(model: MHCLM, windows: torch.Tensor, optimizer: str, lr: float) -> list[float]:
    """The transfer sweep's eager loop: train_step and LambdaLR."""
    steps, dev = windows.shape[0], windows.device
    opt = make_optimizer(model, optimizer, lr)
    sched = LambdaLR(opt, schedule(steps))
    losses = []
    for w in windows.long():
        losses.append(train_step(model, opt, w[:, :-1], w[:, 1:], dev))
        sched.step()
    return torch.stack(losses).float().cpu().tolist()


def graphed_run(model: MHCLM, windows: torch.Tensor, optimizer: str, lr: float, capture: bool) -> GraphedSteps:
    steps = windows.shape[0]
    opt = graph_ready_optimizer(model, optimizer, lr)
    run = GraphedSteps(model, opt, windows, lr_table(opt, schedule(steps), steps), capture=capture)
    for _ in range(steps):
        run.advance()
    return run


def test_lr_table_is_what_lambdalr_gives_each_group():
    model, _ = model_and_windows("cpu", 1)
    steps = 12
    opt = make_optimizer(model, "adam", 2**-6)
    sched = LambdaLR(opt, schedule(steps))
    expected = []
    for _ in range(steps):
        expected.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    table = lr_table(graph_ready_optimizer(model, "adam", 2**-6), schedule(steps), steps)
    assert table.shape == (steps, len(opt.param_groups))
    torch.testing.assert_close(table, torch.tensor(expected, dtype=torch.float32), rtol=0, atol=0)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_the_graph_ready_step_trains_as_the_eager_loop_on_cpu(optimizer):
    """The same batches and schedule: after 4 steps the parameters agree to 2% of a step, the losses of 15
    steps to 2e-6. (Further on, Adam amplifies round-off in parameters whose gradients are themselves round-off
    small, such as the gates' base: its step is lr-sized whatever the gradient's size.)"""
    lr = 2**-7 if optimizer == "adam" else 2**-3
    runs = {}
    for steps in (4, 15):
        eager_model, windows = model_and_windows("cpu", steps)
        graphed_model, _ = model_and_windows("cpu", steps)
        expected = eager_run(eager_model, windows, optimizer, lr)
        run = graphed_run(graphed_model, windows, optimizer, lr, capture=True)  # no capture off CUDA: eager
        assert not run.captured and run.fallback == ""
        losses = run.take_losses() + run.take_losses()  # the second call has nothing new
        runs[steps] = (eager_model, graphed_model, expected, losses)
    eager_model, graphed_model, _, _ = runs[4]
    for (name, p), q in zip(eager_model.named_parameters(), graphed_model.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-3, atol=2e-2 * lr, msg=lambda m, name=name: f"{name}: {m}")
    _, _, expected, losses = runs[15]
    assert len(losses) == 15 and expected[-1] < expected[0] - 0.05  # it trains
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(expected), rtol=2e-6, atol=0)


def relative_gaps(a: torch.nn.Module, b: torch.nn.Module) -> dict[str, float]:
    """Per parameter, ``‖a − b‖ / ‖a‖`` (Frobenius)."""
    return {n: ((p - q).norm() / p.norm().clamp_min(1e-30)).item()
            for (n, p), q in zip(a.named_parameters(), b.parameters(), strict=True)}  # fmt: skip


@CUDA
@pytest.mark.parametrize("hc", [True, False], ids=["mhc", "control"])
def test_a_captured_run_matches_the_eager_run_on_the_gpu(hc, capsys):
    """200 steps under bf16 autocast, three ways: the transfer sweep's eager loop, the graph-ready step run eagerly,
    and the same step captured and replayed. Capture must not change what the step computes: the last two agree
    to 1e-5. The capturable Adam forms its step size on the device in fp32 where the eager one uses host floats, so
    the first two agree to bf16 round-off in the loss (1e-2), and in the parameters as Adam's amplification of
    round-off allows (measured and printed)."""
    steps, lr = 200, 2**-7
    models = [model_and_windows("cuda", steps, d=64, hc=hc)[0] for _ in range(3)]
    windows = model_and_windows("cuda", steps, d=64, hc=hc)[1]
    expected = torch.tensor(eager_run(models[0], windows, "adam", lr))
    uncaptured = graphed_run(models[1], windows, "adam", lr, capture=False)
    captured = graphed_run(models[2], windows, "adam", lr, capture=True)
    assert captured.captured, captured.fallback
    assert not uncaptured.captured
    graph_losses, step_losses = torch.tensor(captured.take_losses()), torch.tensor(uncaptured.take_losses())
    capture_gap = max(relative_gaps(models[1], models[2]).values())
    eager_gaps = relative_gaps(models[0], models[2])
    worst = max(eager_gaps, key=eager_gaps.get)
    loss_gap = (graph_losses - expected).abs().max().item()
    with capsys.disabled():
        print(f"\n{'mhc' if hc else 'control'}, {steps} steps, loss {expected[0]:.3f} → {expected[-1]:.3f}: "
              f"captured vs uncaptured max |Δloss| {(graph_losses - step_losses).abs().max().item():.2e}, "
              f"max ‖Δp‖/‖p‖ {capture_gap:.2e}; captured vs eager loop max |Δloss| {loss_gap:.2e}, "
              f"max ‖Δp‖/‖p‖ {eager_gaps[worst]:.2e} ({worst})")
    assert expected[-1] < expected[0] - 0.5
    torch.testing.assert_close(graph_losses, step_losses, rtol=1e-5, atol=1e-5)
    assert capture_gap < 1e-5
    torch.testing.assert_close(graph_losses, expected, rtol=1e-2, atol=1e-2)
    assert eager_gaps[worst] < 5e-2


def test_compiled_keeps_a_graph_per_kind_and_width_and_compiles_lazily():
    model = model_and_windows("cpu", 1)[0]
    net = compiled(model)
    assert torch._dynamo.config.recompile_limit >= COMPILED_GRAPHS_PER_FORWARD
    assert net is not model and net._orig_mod is model  # nothing compiled until the first call
    assert dict(net.named_parameters()).keys() == {f"_orig_mod.{k}" for k, _ in model.named_parameters()}


@CUDA
@pytest.mark.parametrize("hc", [True, False], ids=["mhc", "control"])
def test_a_compiled_captured_run_matches_the_captured_run_on_the_gpu(hc, capsys):
    """200 steps, captured, of the model and of ``compiled(model)`` twice (the second model of the same width
    reuses the first one's graph): the compiled step fuses differently, so the losses agree to bf16 round-off
    (1e-2). Two runs of the same compiled step agree only to that too, not bit for bit: its backward is not
    deterministic (an H100 gave 4.4e-3 against the plain step and 2.1e-3 between two compiled runs, control)."""
    steps, lr = 200, 2**-7
    plain, windows = model_and_windows("cuda", steps, d=64, hc=hc)
    expected = torch.tensor(graphed_run(plain, windows, "adam", lr, capture=True).take_losses())
    runs = []
    for _ in range(2):
        model = model_and_windows("cuda", steps, d=64, hc=hc)[0]
        opt = graph_ready_optimizer(model, "adam", lr)
        run = GraphedSteps(compiled(model), opt, windows, lr_table(opt, schedule(steps), steps))
        for _ in range(steps):
            run.advance()
        assert run.captured, run.fallback
        runs.append(torch.tensor(run.take_losses()))
    with capsys.disabled():
        print(f"\n{'mhc' if hc else 'control'}, captured: compiled vs plain max |Δloss| "
              f"{(runs[0] - expected).abs().max().item():.2e}, compiled twice {(runs[1] - runs[0]).abs().max():.2e}")
    assert expected[-1] < expected[0] - 0.5
    torch.testing.assert_close(runs[0], expected, rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(runs[1], runs[0], rtol=1e-2, atol=1e-2)


def test_compiling_under_another_attention_setting_drops_the_compiled_graphs(monkeypatch):
    """A traced graph keeps the attention kernel it was traced with, and Dynamo does not guard on the backend flags:
    a model compiled under another setting than the last one's resets Dynamo first; the same setting reuses."""
    resets = []
    monkeypatch.setattr(torch._dynamo, "reset", lambda: resets.append(True))
    model = model_and_windows("cpu", 1)[0]
    compiled(model)
    assert resets == []
    compiled(model, "no-cudnn")
    compiled(model, "no-cudnn")
    assert len(resets) == 1
    compiled(model)  # back to PyTorch's own choice, as the process began
    assert len(resets) == 2


def captured_attention_ops(attention: str, torch_compile: bool = False) -> set[str]:
    """The attention ops dispatched while the training step is captured (so the kernels the graph records) under
    ``attention``, for the model at d = 1024 with 4 heads: head dimension 256, as a transfer sweep's; with
    ``torch_compile``, the step of :func:`compiled` (traced in the warm-up steps)."""
    steps = WARMUP_STEPS + 1
    model, windows = model_and_windows("cuda", steps, d=1024, heads=4)
    opt = graph_ready_optimizer(model, "adam", 2**-10)
    net = compiled(model, attention) if torch_compile else model
    run = GraphedSteps(net, opt, windows, lr_table(opt, schedule(steps), steps))
    with attention_backends(attention):
        for _ in range(WARMUP_STEPS):
            run.advance()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            run.advance()  # the capture, then its first replay
    assert run.captured, run.fallback
    return {e.key for e in prof.key_averages() if "attention" in e.key.lower()}


@CUDA
@pytest.mark.parametrize("torch_compile", [False, True], ids=["captured", "compiled"])
def test_no_cudnn_keeps_cudnn_attention_out_of_the_captured_step_at_head_dim_256(torch_compile, capsys):
    """Under ``no-cudnn`` the captured step dispatches no cuDNN attention, forward or backward, at head dimension
    256 (where PyTorch's own choice on an H100 with a recent cuDNN is cuDNN's kernel: printed, not asserted). Compiled,
    the ``no-cudnn`` model is traced after one of the same width under ``auto`` in this process, whose graph Dynamo
    would otherwise reuse with its kernel."""
    auto = captured_attention_ops("auto", torch_compile)
    without = captured_attention_ops("no-cudnn", torch_compile)
    with capsys.disabled():
        print(f"\nd=1024, 4 heads, {'compiled' if torch_compile else 'captured'} step, cuDNN "
              f"{torch.backends.cudnn.version()}: auto dispatched {sorted(auto)}; no-cudnn {sorted(without)}")
    assert not any("cudnn" in op.lower() for op in without), without
    assert any(kind in op for op in without for kind in ("flash", "efficient", "math")), without


@CUDA
def test_each_run_steps_on_its_own_stream_and_captures_there():
    """Runs sharing a GPU each capture on their own stream (the one current when the run was made), so that their
    graphs do not share one cuBLAS workspace (PyTorch's default capture stream is one per process); a run made on
    the default stream gets a stream of its own, since capture cannot use the default one. The current stream
    waits for the steps: the losses read after them are the steps'."""
    steps = WARMUP_STEPS + 3
    made = []
    for stream in (torch.cuda.Stream(), torch.cuda.Stream(), None):
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            model, windows = model_and_windows("cuda", steps)
            opt = graph_ready_optimizer(model, "adam", 2**-8)
            run = GraphedSteps(model, opt, windows, lr_table(opt, schedule(steps), steps))
            for _ in range(steps):
                run.advance()
            made.append((stream, run, run.take_losses()))
    (first, a, a_losses), (second, b, b_losses), (_, c, c_losses) = made
    assert a.captured and b.captured and c.captured, (a.fallback, b.fallback, c.fallback)
    assert a.stream == first and b.stream == second
    assert c.stream not in (torch.cuda.default_stream(), first, second)
    torch.testing.assert_close(a_losses, c_losses, rtol=1e-5, atol=1e-5)  # the same model and batches: the same
    torch.testing.assert_close(b_losses, c_losses, rtol=1e-5, atol=1e-5)  # steps, whichever stream runs them


class FakeStream:
    """A stand-in for ``torch.cuda.Stream`` on the CPU: a name, and the streams it was told to wait for."""

    def __init__(self, name: str) -> None:
        self.name, self.waited = name, []

    def wait_stream(self, other: FakeStream) -> None:
        self.waited.append(other.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FakeStream) and other.name == self.name

    __hash__ = None


@pytest.fixture
def fake_streams(monkeypatch):
    """``torch.cuda``'s stream calls over :class:`FakeStream`: the current stream starts as the default one, and
    ``torch.cuda.stream(s)`` makes ``s`` current in its block. Returns the state: ``current``, ``default``, ``made``."""
    from mhc_mup.training import graphed

    state = {"default": FakeStream("default"), "made": []}
    state["current"] = state["default"]

    @contextlib.contextmanager
    def stream(s):
        before, state["current"] = state["current"], s
        try:
            yield
        finally:
            state["current"] = before

    def new_stream(device=None):
        state["made"].append(FakeStream(f"new{len(state['made'])}"))
        return state["made"][-1]

    monkeypatch.setattr(graphed.torch.cuda, "current_stream", lambda device=None: state["current"])
    monkeypatch.setattr(graphed.torch.cuda, "default_stream", lambda device=None: state["default"])
    monkeypatch.setattr(graphed.torch.cuda, "stream", stream)
    monkeypatch.setattr(graphed.torch.cuda, "Stream", new_stream)
    return state


def test_a_run_takes_the_stream_it_was_given_else_one_of_its_own(fake_streams):
    """The capture stream rule of :class:`GraphedSteps`: the current stream when a caller gave the run its own
    (runs taking turns: graphs of runs replaying at once then never share a capture stream, whose cuBLAS workspace
    they would share), a new stream when the current one is the default (where capture cannot run)."""
    from mhc_mup.training.graphed import _own_stream

    own = _own_stream(torch.device("cuda"))
    assert own.name == "new0"
    given = FakeStream("turn")
    with torch.cuda.stream(given):
        assert _own_stream(torch.device("cuda")) is given
    assert len(fake_streams["made"]) == 1


def test_a_step_on_another_stream_is_ordered_both_ways_and_none_on_its_own(fake_streams):
    """:func:`_on`: work queued on another stream first waits for the current stream's, and the current stream
    then waits for it (the losses read after a step are that step's); on the current stream nothing waits."""
    from mhc_mup.training.graphed import _on

    dev, side, seen = torch.device("cuda"), FakeStream("side"), []
    with _on(side, dev):
        seen.append(torch.cuda.current_stream(dev).name)
    assert seen == ["side"] and side.waited == ["default"] and fake_streams["default"].waited == ["side"]
    turn = FakeStream("turn")
    with torch.cuda.stream(turn), _on(turn, dev):
        seen.append(torch.cuda.current_stream(dev).name)
    assert seen[-1] == "turn" and turn.waited == []
    with _on(None, dev):  # no capture: the current stream, untouched
        seen.append(torch.cuda.current_stream(dev).name)
    assert seen[-1] == "default" and fake_streams["default"].waited == ["side"]
