"""Fused mHC on one GPU: each op against its memory-traffic floor, and the training-step overhead.

    python benchmarks/bench_fused.py [--widths 256,1024,2048] [--tokens 4096] [--compile] [--json OUT]

1. Copy bandwidth: a 1 GiB device-to-device copy, bytes read + written over its median time.
2. Per op (n_s = 4, bf16 streams, ``tokens`` tokens): the fused hc_pre and hc_post, forward and
   backward, each timed alone on the device (median; L2 flushed and launches queued before each run); the
   bytes it must move (every input read once, every output written once) over the measured bandwidth
   is its floor. The reference ops through autograd are timed beside them.
3. Training step of a 4-layer byte-level LM (d_head 64, MLP 4d, 16×256 tokens, bf16 autocast, bf16
   streams, AdamW): the plain-residual control against mHC (n_s = 4, K = 20) through the reference ops and
   through the fused kernels, eager, and with ``--compile`` also under torch.compile. Median of timed
   steps after warm-up; overhead = mHC step / control step − 1.
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import sys
import time

import torch
import triton
from triton.testing import do_bench

from mhc_mup.kernels import triton_kernels as tk
from mhc_mup.mhc import ops
from mhc_mup.training.model import MHCLM, ModelConfig
from mhc_mup.training.step import train_step

N_S, K = 4, 20


def _tiles() -> dict:
    """triton_kernels' tile constants (its public upper-case names) and their values now."""
    return {k: getattr(tk, k) for k in dir(tk) if k.isupper() and not k.startswith("_")}


def l2_flush_buffer() -> torch.Tensor:
    """256 MiB, over 5× the H100's L2: ``zero_()`` on it evicts everything a timed call could find cached."""
    return torch.empty(2**26, dtype=torch.int32, device="cuda")


def gpu_ms(fn, reps: int = 50) -> float:
    """Median device time of ``fn()`` in ms, with L2 flushed before each call. The call's launches queue
    behind a GPU sleep, so the host's launch overhead (Python, custom-op dispatch) is not in the figure:
    this times the kernels, as the memory-traffic floor assumes."""
    flush = l2_flush_buffer()
    fn()
    events = []
    for _ in range(reps):
        flush.zero_()
        torch.cuda._sleep(2_000_000)  # about 1 ms: longer than any op's host side
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        events.append((start, end))
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in events)


def copy_bandwidth() -> float:
    """Bytes per second of a 1 GiB device-to-device copy (read + write)."""
    src = torch.randn(2**29, device="cuda", dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    ms = do_bench(lambda: dst.copy_(src), warmup=50, rep=300, return_mode="median")
    return 2 * src.numel() * src.element_size() / (ms * 1e-3)


def op_inputs(T: int, d: int, gen: torch.Generator, streams: torch.dtype = torch.bfloat16) -> dict[str, torch.Tensor]:
    """One op call's tensors at width ``d``, ``T`` tokens: the streams ``x`` and their gradient ``gout`` in
    ``streams``, the branch tensors in bf16, the gates and generator in fp32."""
    rows = (2 + N_S) * N_S
    dev = "cuda"
    x = torch.randn(T, N_S, d, generator=gen, device=dev).to(streams)
    fn = torch.randn(rows, N_S * d, generator=gen, device=dev) / (N_S * d) ** 0.5
    return {
        "x": x,
        "fn": fn,
        "scale": torch.tensor([1.0, 1.0, 2.0], device=dev),
        "base": torch.randn(rows, generator=gen, device=dev) * 0.3,
        "f": torch.randn(T, d, generator=gen, device=dev).bfloat16(),
        "gy": torch.randn(T, d, generator=gen, device=dev).bfloat16(),
        "gpost": torch.randn(T, N_S, generator=gen, device=dev),
        "gcomb": torch.randn(T, N_S, N_S, generator=gen, device=dev),
        "gout": torch.randn(T, N_S, d, generator=gen, device=dev).to(streams),
        "post": torch.rand(T, N_S, generator=gen, device=dev) * 2,
        "comb": torch.softmax(torch.randn(T, N_S, N_S, generator=gen, device=dev), -1),
    }


def floor_bytes(T: int, d: int) -> dict[str, int]:
    """Bytes each op must move: bf16 streams and branch tensors (2 B), fp32 gates and generator (4 B)."""
    n, b = N_S, 2
    rows = (2 + n) * n
    gen_bytes = 4 * (rows * n * d + 3 + rows)  # fn, scale, base (read, or their gradients written)
    gates = 4 * T * (n + n * n)  # post and comb (or their gradients)
    pre_bwd = T * n * d * b + gen_bytes + T * d * b + gates + T * n * d * b + gen_bytes
    return {
        "hc_pre fwd": T * n * d * b + gen_bytes + T * d * b + gates,
        "hc_pre bwd": pre_bwd,
        "hc_pre bwd, routed": pre_bwd + T * n * d * b,  # also reads hc_post's gradient of x
        "hc_post fwd": T * d * b + T * n * d * b + gates + T * n * d * b,
        "hc_post bwd": T * n * d * b + T * d * b + T * n * d * b + gates + T * d * b + T * n * d * b + gates,
    }


def bench_ops(T: int, d: int, bandwidth: float) -> list[dict]:
    inp = op_inputs(T, d, torch.Generator("cuda").manual_seed(d))
    x, fn, scale, base = inp["x"], inp["fn"], inp["scale"], inp["base"]
    _y, post, comb, mixes, rstd = tk.hc_pre_forward(x, fn, scale, base, K, ops.HC_EPS, ops.NORM_EPS)
    runs = {
        "hc_pre fwd": lambda: tk.hc_pre_forward(x, fn, scale, base, K, ops.HC_EPS, ops.NORM_EPS),
        "hc_pre bwd": lambda: tk.hc_pre_backward(
            x, fn, scale, base, mixes, rstd, inp["gy"], inp["gpost"], inp["gcomb"], K, ops.HC_EPS
        ),
        "hc_pre bwd, routed": lambda: tk.hc_pre_backward(
            x, fn, scale, base, mixes, rstd, inp["gy"], inp["gpost"], inp["gcomb"], K, ops.HC_EPS, inp["gout"]
        ),
        "hc_post fwd": lambda: tk.hc_post_forward(inp["f"], x, post, comb),
        "hc_post bwd": lambda: tk.hc_post_backward(inp["gout"], inp["f"], x, post, comb),
    }
    floors = floor_bytes(T, d)
    rows = []
    for name, fn_ in runs.items():
        ms = gpu_ms(fn_, reps=100)
        floor_ms = floors[name] / bandwidth * 1e3
        rows.append({"op": name, "d": d, "tokens": T, "ms": ms, "floor_bytes": floors[name], "floor_ms": floor_ms,
                     "ratio": ms / floor_ms})  # fmt: skip
    for op in ("hc_pre", "hc_post"):
        fwd, bwd = (r for r in rows if r["op"] in (f"{op} fwd", f"{op} bwd"))
        rows.append({"op": f"{op} fwd+bwd", "d": d, "tokens": T, "ms": fwd["ms"] + bwd["ms"],
                     "floor_bytes": fwd["floor_bytes"] + bwd["floor_bytes"],
                     "floor_ms": fwd["floor_ms"] + bwd["floor_ms"],
                     "ratio": (fwd["ms"] + bwd["ms"]) / (fwd["floor_ms"] + bwd["floor_ms"])})  # fmt: skip

    # the reference ops through autograd, forward + backward, on the same inputs
    xr = x.detach().requires_grad_()
    fnr, sr, br = (t.detach().requires_grad_() for t in (fn, scale, base))
    fr = inp["f"].detach().requires_grad_()

    def reference_pre():
        yy, pp, cc = ops.hc_pre(xr, fnr, sr, br, K)
        torch.autograd.backward((yy, pp, cc), (inp["gy"], inp["gpost"], inp["gcomb"]))

    def reference_post():
        out = ops.hc_post(fr, xr, post, comb)
        out.backward(inp["gout"])

    for name, fn_ in (("hc_pre fwd+bwd", reference_pre), ("hc_post fwd+bwd", reference_post)):
        ms = do_bench(fn_, warmup=25, rep=200, return_mode="median")  # host-bound: launch overhead is its cost
        rows.append({"op": f"{name} (reference ops)", "d": d, "tokens": T, "ms": ms})
    return rows


TUNE_GRID_FP32 = [  # fp32 streams: the ∂L/∂x and ∂L/∂fn kernel's tiles (token chunk, column block, warps, stages)
    {},
    {"GRAD_FP32": (32, 128, 4, 2)},
    {"GRAD_FP32": (64, 128, 4, 1)},  # the tiles before the tuning (GRAD_FP32 is now 64, 64, 4 warps, 2 stages)
    {"GRAD_FP32": (32, 64, 4, 2)},
    {"GRAD_FP32": (32, 64, 4, 3)},
    {"GRAD_FP32": (16, 128, 4, 2)},
    {"GRAD_FP32": (64, 128, 8, 1)},
    {"GRAD_FP32": (32, 128, 8, 2)},
    {"GRAD_FP32": (64, 64, 8, 2)},
    {"GRAD_FP32": (32, 128, 4, 1)},
    {"GRAD_FP32": (32, 64, 4, 2), "GRAD_PROGRAMS_PER_SM": 4},
]
TUNE_GRID = [  # overrides of triton_kernels' tile constants (on top of any --set), one variant per entry
    {},
    {"GY_BLOCK_D": 32},
    {"GY_SPLITS": 8},
    {"GY_SPLITS": 8, "GY_BLOCK_D": 32},
    {"GY_SPLITS": 2},
    {"PRE_BLOCK_T": 32},
    {"PRE_BLOCK_T": 8},
    {"COLLAPSE_SPLITS": 8},
    {"PRE_BLOCK_D": 128},
    {"PRE_BLOCK_D": 32},
    {"PROJ_SPLITS": 4},
    {"PROJ_STAGES": 3},
    {"PROJ_BLOCK_D": 64, "PROJ_STAGES": 1},
]


def kernel_us(calls: list, repeats: int = 10) -> dict[str, float]:
    """Device µs per kernel name for one round of ``calls`` (torch.profiler; L2 flushed before each call)."""
    from torch.profiler import ProfilerActivity, profile

    flush = l2_flush_buffer()
    for c in calls:
        c()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(repeats):
            for c in calls:
                flush.zero_()
                c()
        torch.cuda.synchronize()
    out: dict[str, float] = {}
    for evt in prof.key_averages():
        us = getattr(evt, "self_device_time_total", None) or getattr(evt, "self_cuda_time_total", 0)
        if us > 0 and "FillFunctor" not in evt.key:  # the flush
            out[evt.key[:60]] = us / repeats
    return out


def _op_calls(T: int, d: int, streams: torch.dtype = torch.bfloat16) -> dict[str, list]:
    inp = op_inputs(T, d, torch.Generator("cuda").manual_seed(d), streams)
    x, fn, scale, base = inp["x"], inp["fn"], inp["scale"], inp["base"]
    _, post, comb, mixes, rstd = tk.hc_pre_forward(x, fn, scale, base, K, ops.HC_EPS, ops.NORM_EPS)
    grads = (inp["gy"], inp["gpost"], inp["gcomb"])
    return {
        "hc_pre": [  # the backward as the model runs it: with hc_post's gradient of x routed in
            lambda: tk.hc_pre_forward(x, fn, scale, base, K, ops.HC_EPS, ops.NORM_EPS),
            lambda: tk.hc_pre_backward(x, fn, scale, base, mixes, rstd, *grads, K, ops.HC_EPS, inp["gout"]),
        ],
        "hc_post": [
            lambda: tk.hc_post_forward(inp["f"], x, post, comb),
            lambda: tk.hc_post_backward(inp["gout"], inp["f"], x, post, comb),
        ],
    }


def _pre_grads(calls: dict[str, list]) -> tuple[torch.Tensor, ...]:
    """hc_pre's backward outputs (∂L/∂x, ∂L/∂fn, ...) as :func:`_op_calls`'s call computes them, in fp64."""
    return tuple(t.double().clone() for t in calls["hc_pre"][1]() if isinstance(t, torch.Tensor))


def _relative_error(got: tuple[torch.Tensor, ...], ref: tuple[torch.Tensor, ...]) -> float:
    """The largest ‖got − ref‖ / ‖ref‖ over the pairs."""
    return max(((a - b).norm() / b.norm().clamp_min(1e-300)).item() for a, b in zip(got, ref, strict=True))


def breakdown(T: int, d: int, streams: torch.dtype = torch.bfloat16) -> list[dict]:
    """Device time per kernel of hc_pre and hc_post, forward and backward (torch.profiler)."""
    calls = _op_calls(T, d, streams)
    times = kernel_us(calls["hc_pre"] + calls["hc_post"])
    rows = sorted(({"kernel": k, "us_per_call": v} for k, v in times.items()), key=lambda r: -r["us_per_call"])
    print(f"per-kernel device time at d={d}, {T} tokens (µs per call, L2 flushed before each op)")
    for r in rows:
        print(f"  {r['kernel']:60s} {r['us_per_call']:8.2f}")
    print()
    return rows


TUNE_KERNELS = {  # kernel → column name in the tune table
    "_projection_kernel": "proj",
    "_hc_pre_gates_kernel": "gates",
    "_hc_pre_gate_grad_kernel": "gate_grad",
    "_hc_pre_pre_grad_kernel": "pre_grad",
    "_hc_pre_input_grad_kernel": "input_grad",
    "_sum_partials_kernel": "sums",
    "_hc_post_fwd_kernel": "post_fwd",
    "_hc_post_bwd_kernel": "post_bwd",
}


def tune(T: int, d: int, streams: torch.dtype = torch.bfloat16) -> list[dict]:
    """Both ops' kernels at each variant of :data:`TUNE_GRID` (:data:`TUNE_GRID_FP32` for fp32 streams): device
    µs per kernel, and each op's forward + backward as :func:`gpu_ms` times it (the figure that counts: it
    includes the gaps between kernels). A variant whose hc_pre gradients differ from the default tiles' by more
    than fp32 round-off, or that does not compile (shared memory), is reported and skipped."""
    ops_calls = _op_calls(T, d, streams)
    reference = _pre_grads(ops_calls)
    rows = []
    head = " ".join(f"{v:>10s}" for v in TUNE_KERNELS.values())
    print(f"{'variant':56s} {head} {'other':>6s} {'pre µs':>7s} {'post µs':>7s}")
    for overrides in TUNE_GRID_FP32 if streams == torch.float32 else TUNE_GRID:
        saved = {k: getattr(tk, k) for k in overrides}
        for k, v in overrides.items():
            setattr(tk, k, v)
        try:
            error = _relative_error(_pre_grads(ops_calls), reference)
            if error > 1e-5:
                raise ValueError(f"hc_pre's gradients differ from the default tiles' by {error:.2e}")
            times = kernel_us(ops_calls["hc_pre"] + ops_calls["hc_post"])
            op_us = {op: 1e3 * sum(gpu_ms(c, reps=50) for c in calls) for op, calls in ops_calls.items()}
        except Exception as exc:  # a variant that fails is a result of the tuning, not the end of it
            print(f"{overrides!s:56s} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}", flush=True)
            rows.append({**overrides, "failed": f"{type(exc).__name__}: {exc}"})
            continue
        finally:
            for k, v in saved.items():
                setattr(tk, k, v)
        other = sum(v for k, v in times.items() if k not in TUNE_KERNELS)
        rows.append({**overrides, "kernels_us": times, "op_us": op_us})
        cells = " ".join(f"{times.get(k, 0.0):10.1f}" for k in TUNE_KERNELS)
        print(f"{overrides!s:56s} {cells} {other:6.1f} {op_us['hc_pre']:7.1f} {op_us['hc_post']:7.1f}", flush=True)
    print()
    return rows


def step_time(cfg: ModelConfig, kernels: str, mode: str, batch: int, seq: int, steps: int) -> dict:
    """Median ms per training step; ``mode`` is ``eager``, ``compiled`` (torch.compile of the model) or
    ``graphs`` (torch.compile mode='reduce-overhead': the step's kernels replayed as CUDA graphs)."""
    torch._dynamo.reset()  # each model compiles afresh: no recompile limit shared across widths
    model = MHCLM(cfg, seed=0, kernels=kernels).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0, fused=True)
    step = train_step
    if mode != "eager":  # the model's forward and backward; the fused AdamW step stays as it is
        model = torch.compile(model, mode="reduce-overhead" if mode == "graphs" else None)
    gen = torch.Generator("cuda").manual_seed(0)
    batches = [torch.randint(0, 256, (batch, seq + 1), device="cuda", generator=gen) for _ in range(4)]
    dev = torch.device("cuda")
    t0 = time.perf_counter()
    for i in range(8):  # warm-up, compilation included
        b = batches[i % 4]
        step(model, opt, b[:, :-1], b[:, 1:], dev)
    torch.cuda.synchronize()
    warm_s = time.perf_counter() - t0
    torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(steps):
        b = batches[i % 4]
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step(model, opt, b[:, :-1], b[:, 1:], dev)
        end.record()
        times.append((start, end))
    torch.cuda.synchronize()
    ms = [s.elapsed_time(e) for s, e in times]
    return {"ms": statistics.median(ms), "ms_min": min(ms), "peak_mib": torch.cuda.max_memory_allocated() / 2**20,
            "warmup_s": warm_s}  # fmt: skip


def _profiled_steps(cfg: ModelConfig, kernels: str, batch: int, seq: int, activity, *, compiled: bool, warmup: int):
    """torch.profiler (``activity``: CPU or CUDA) over 5 training steps of a fresh model, after ``warmup`` steps;
    ``(profiler, steps)``."""
    from torch.profiler import profile

    model = MHCLM(cfg, seed=0, kernels=kernels).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0, fused=True)
    if compiled:
        model = torch.compile(model)
    b = torch.randint(0, 256, (batch, seq + 1), device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    dev = torch.device("cuda")
    for _ in range(warmup):
        train_step(model, opt, b[:, :-1], b[:, 1:], dev)
    torch.cuda.synchronize()
    steps = 5
    with profile(activities=[activity]) as prof:
        for _ in range(steps):
            train_step(model, opt, b[:, :-1], b[:, 1:], dev)
        torch.cuda.synchronize()
    return prof, steps


def model_config(d: int, stream_dtype: str, hc: bool = True, depth: int = 4, heads: int = 0) -> ModelConfig:
    """The benchmarked model at width ``d``: ``depth`` blocks of ``heads`` heads (0: d/64, head dimension 64; a
    transfer sweep keeps 4)."""
    return ModelConfig(d=d, depth=depth, heads=heads or max(1, d // 64), n_s=N_S, K=K, hc=hc, stream_dtype=stream_dtype)


def profile_step(d: int, batch: int, seq: int, stream_dtype: str, depth: int = 4, heads: int = 0) -> list[dict]:
    """Host time per op of one eager fused mHC training step (torch.profiler, CPU side): where launch
    overhead goes when the step is not replayed as CUDA graphs."""
    from torch.profiler import ProfilerActivity

    cfg = model_config(d, stream_dtype, depth=depth, heads=heads)
    prof, steps = _profiled_steps(cfg, "triton", batch, seq, ProfilerActivity.CPU, compiled=False, warmup=3)
    rows = [{"op": e.key[:70], "self_cpu_us": e.self_cpu_time_total / steps, "calls": e.count / steps}
            for e in prof.key_averages()]  # fmt: skip
    rows.sort(key=lambda r: -r["self_cpu_us"])
    total = sum(r["self_cpu_us"] for r in rows)
    print(f"host time of one eager fused step at d={d}: {total / 1e3:.2f} ms of profiled CPU ops; the top 20:")
    for r in rows[:20]:
        print(f"  {r['op']:70s} {r['self_cpu_us']:9.1f} µs  ×{r['calls']:.0f}")
    print()
    return rows


FUSED_KERNEL_PREFIXES = ("_projection_kernel", "_hc_pre_", "_hc_post_", "_sum_partials_kernel")


def device_profile_step(d: int, batch: int, seq: int, stream_dtype: str, depth: int = 4, heads: int = 0) -> dict:
    """Device time per step, by kernel, of the compiled control step and the compiled fused mHC step
    (torch.profiler, CUDA side: the kernels that a CUDA-graph replay of the step runs): how much of mHC's
    extra time is the fused ops' own kernels and how much the rest of the model (the stream expansion and
    the head)."""
    from torch.profiler import ProfilerActivity

    per_model: dict[str, dict[str, float]] = {}
    for name, hc in (("control", False), ("mhc", True)):
        torch._dynamo.reset()
        cfg = model_config(d, stream_dtype, hc, depth, heads)
        kernels = "triton" if hc else "reference"
        prof, steps = _profiled_steps(cfg, kernels, batch, seq, ProfilerActivity.CUDA, compiled=True, warmup=5)
        events = [e for e in prof.key_averages() if e.self_device_time_total > 0]
        per_model[name] = {e.key[:70]: e.self_device_time_total / steps / 1e3 for e in events}
    control_ms = sum(per_model["control"].values())
    fused = {k: v for k, v in per_model["mhc"].items() if k.startswith(FUSED_KERNEL_PREFIXES)}
    rest = {k: v for k, v in per_model["mhc"].items() if k not in fused}
    fused_ms, rest_ms = sum(fused.values()), sum(rest.values())
    print(f"device time per compiled step at d={d} (sum of kernel times, ms)")
    print(f"  control: {control_ms:.3f}; mHC: {fused_ms + rest_ms:.3f} = fused ops {fused_ms:.3f} + rest {rest_ms:.3f}")
    extra = fused_ms + rest_ms - control_ms
    print(f"  mHC - control = {extra:.3f} ({extra / control_ms:.1%} of the control): fused ops {fused_ms:.3f}, "
          f"rest of the model {rest_ms - control_ms:+.3f}")  # fmt: skip
    for k, v in sorted(fused.items(), key=lambda kv: -kv[1]):
        print(f"    {k:70s} {v:7.3f}")
    print("  the mHC step's largest other kernels:")
    for k, v in sorted(rest.items(), key=lambda kv: -kv[1])[:12]:
        print(f"    {k:70s} {v:7.3f}  (control {per_model['control'].get(k[:70], 0.0):.3f})")
    print()
    return {"d": d, "control": per_model["control"], "mhc": per_model["mhc"], "control_ms": control_ms,
            "fused_ops_ms": fused_ms, "rest_ms": rest_ms}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="256,1024,2048")
    parser.add_argument("--tokens", type=int, default=4096, help="tokens per op call (per-op timings)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per model")
    parser.add_argument(
        "--compile", action="store_true", help="also time torch.compile'd steps, plain and as CUDA graphs"
    )
    parser.add_argument("--skip-ops", action="store_true")
    parser.add_argument("--tune", action="store_true", help="time hc_pre's tile shapes at d=1024 first")
    parser.add_argument("--skip-steps", action="store_true")
    parser.add_argument("--profile-step", action="store_true", help="host time per op of one eager step at d=1024")
    parser.add_argument(
        "--profile-device-step",
        action="store_true",
        help="device time per kernel of the compiled control and fused mHC steps, at each of --widths",
    )
    parser.add_argument("--stream-dtype", default="bfloat16", choices=("bfloat16", "float32"))
    parser.add_argument("--depth", type=int, default=4, help="blocks of the training-step models (default 4)")
    parser.add_argument(
        "--heads",
        type=int,
        default=0,
        help="attention heads of the training-step models (default 0: d/64; a transfer sweep keeps 4)",
    )
    parser.add_argument("--json", help="also write every number to this file")
    parser.add_argument(
        "--once",
        action="store_true",
        help="only run hc_pre and hc_post, forward and backward, three times at each width (a target for ncu)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a triton_kernels tile constant for the whole run, e.g. PROJ_STAGES=2",
    )
    args = parser.parse_args()
    for item in args.set:
        name, _, value = item.partition("=")
        if name not in _tiles() or not value:
            parser.error(f"--set {item!r}: expected NAME=VALUE with NAME one of triton_kernels' tile constants")
        try:
            setattr(tk, name, ast.literal_eval(value))
        except (ValueError, SyntaxError):
            parser.error(f"--set {item!r}: {value!r} is not a Python literal")
    try:
        widths = [int(w) for w in args.widths.split(",")]
    except ValueError:
        parser.error(f"--widths {args.widths!r}: expected comma-separated integers, e.g. 256,1024")
    if not torch.cuda.is_available():
        sys.exit("bench_fused.py needs a CUDA device")
    if args.once:
        for d in widths:
            calls = [c for group in _op_calls(args.tokens, d).values() for c in group]
            for _ in range(3):
                for call in calls:
                    call()
        torch.cuda.synchronize()
        return
    report: dict = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
                    "args": vars(args), "tiles": _tiles()}  # fmt: skip
    bw = copy_bandwidth()
    report["copy_bandwidth_GBps"] = bw / 1e9
    print(f"{report['gpu']}, torch {torch.__version__}, triton {triton.__version__}")
    print(f"device-to-device copy bandwidth: {bw / 1e9:.0f} GB/s (read + write)")
    print("tiles:", ", ".join(f"{k}={v}" for k, v in report["tiles"].items()), "\n")

    if args.tune:
        streams = getattr(torch, args.stream_dtype)
        report["tune"] = tune(args.tokens, 1024, streams)
        report["breakdown"] = breakdown(args.tokens, 1024, streams)
    if args.profile_step:
        report["profile_step"] = profile_step(1024, args.batch, args.seq, args.stream_dtype, args.depth, args.heads)
    if args.profile_device_step:
        profiles = [
            device_profile_step(d, args.batch, args.seq, args.stream_dtype, args.depth, args.heads) for d in widths
        ]
        report["profile_device_step"] = profiles
    if not args.skip_ops:
        rows = [r for d in widths for r in bench_ops(args.tokens, d, bw)]
        report["ops"] = rows
        print(f"{'op':34s} {'d':>5s} {'ms':>8s} {'floor MB':>9s} {'floor ms':>9s} {'× floor':>8s}")
        for r in rows:
            extra = f" {r['floor_bytes'] / 1e6:9.2f} {r['floor_ms']:9.4f} {r['ratio']:8.2f}" if "ratio" in r else ""
            print(f"{r['op']:34s} {r['d']:5d} {r['ms']:8.4f}{extra}")
        print()

    if not args.skip_steps:
        steps = []
        variants = [("control", "eager", "reference"), ("mhc", "eager", "reference"), ("mhc", "eager", "triton")]
        if args.compile:
            variants += [("control", m, "reference") for m in ("compiled", "graphs")]
            variants += [("mhc", m, "triton") for m in ("compiled", "graphs")]
        for d in widths:
            for model, mode, kernels in variants:
                cfg = model_config(d, args.stream_dtype, model == "mhc", args.depth, args.heads)
                r = step_time(cfg, kernels, mode, args.batch, args.seq, args.steps)
                r.update(d=d, model=model, kernels=kernels if model == "mhc" else "-", mode=mode)
                steps.append(r)
                print(f"d={d:5d} {model:8s} {r['kernels']:10s} {mode:9s} "
                      f"{r['ms']:8.2f} ms/step  peak {r['peak_mib']:8.0f} MiB", flush=True)  # fmt: skip
        report["steps"] = steps
        print(f"\n{'d':>5s} {'mode':9s} {'control ms':>11s} {'mHC ms':>9s} {'kernels':10s} {'overhead':>9s}")
        for s in steps:
            if s["model"] != "mhc":
                continue
            same = (c for c in steps if c["model"] == "control" and (c["d"], c["mode"]) == (s["d"], s["mode"]))
            ctrl = next(same)
            s["overhead"] = s["ms"] / ctrl["ms"] - 1
            mode = s["mode"]
            print(f"{s['d']:5d} {mode:9s} {ctrl['ms']:11.2f} {s['ms']:9.2f} {s['kernels']:10s} {s['overhead']:9.1%}")

    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
