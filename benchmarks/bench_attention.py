"""Which attention kernel runs the transfer model's attention at each width, how fast, and does its backward stay
finite? A transfer sweep keeps 4 heads, so the head dimension grows with the width (64 at d = 256, 256 at
d = 1024, 512 at d = 2048), and PyTorch's scaled-dot-product attention picks its backend per shape: cuDNN's first
on an H100 once the bundled cuDNN is recent enough, FlashAttention, the memory-efficient kernel, the math one.

For each width and each backend (``default``: PyTorch's own choice), at the model's shapes (``batch`` sequences of
``seq`` bytes, bf16, causal) and its two attention scales (µP ``1/d_head``, SP ``1/sqrt(d_head)``):

- ``supported``: the backend accepts the shape (else the first line of its refusal);
- ``ms``: forward + backward, CUDA-event timed over ``--repeats`` calls after a warm-up;
- ``nonfinite``: calls whose output or any gradient holds a NaN or inf, over ``--repeats`` calls with fresh inputs
  (q, k, v of RMS ``--input-rms``);
- ``rel_err``: the largest ‖out − math‖ / ‖math‖ over the output and the three gradients against the math backend
  in fp32 on the same inputs.

With ``--train-width D`` it also trains the ``mup`` configuration at that width through ``run_transfer``, as a
sweep would (4 learning rates, runs taking turns on the GPU, each step captured), per variant: PyTorch's default
attention or cuDNN's left out, compiled or not, the fused mHC kernels or the reference ops. Each run's steps,
divergence and final loss are the real path's answer; ``--train-in-turns 1`` runs them one at a time (a race
between runs taking turns shows as a difference between the two).

    python benchmarks/bench_attention.py --widths 256,512,1024,2048 --json benchmarks/results/bench_attention.json \\
        --train-width 1024 --train-lr 2^-10 --train-steps 300
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_train_step import write_results
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {
    "default": None,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "math": SDPBackend.MATH,
}


def backends(name: str) -> contextlib.AbstractContextManager:
    """The context that restricts attention to backend ``name`` (``default``: no restriction)."""
    chosen = BACKENDS[name]
    return contextlib.nullcontext() if chosen is None else sdpa_kernel([chosen])


def attention_grads(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, scale: float
                    ) -> list[torch.Tensor]:  # fmt: skip
    """``[out, ∂q, ∂k, ∂v]`` of causal attention ``(B, H, T, d_head)`` for output gradient ``g``."""
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    out = F.scaled_dot_product_attention(*leaves, is_causal=True, scale=scale)
    return [out.detach(), *torch.autograd.grad(out, leaves, g)]


def check_backend(name: str, shape: tuple[int, int, int, int], scale: float, args: argparse.Namespace,
                  dev: torch.device) -> dict:  # fmt: skip
    """One backend at one shape and scale: supported, ms per forward + backward, non-finite calls, error vs math."""
    gen = torch.Generator(device=dev).manual_seed(0)

    def draw() -> list[torch.Tensor]:
        return [args.input_rms * torch.randn(shape, generator=gen, device=dev) for _ in range(3)] + [
            torch.randn(shape, generator=gen, device=dev)]  # fmt: skip

    row = {"backend": name, "supported": True, "ms": math.nan, "nonfinite": 0, "rel_err": math.nan}
    try:
        with backends(name):
            attention_grads(*(t.bfloat16() for t in draw()), scale)
    except RuntimeError as exc:
        return row | {"supported": str(exc).strip().splitlines()[0][:160]}
    worst = 0.0
    for _ in range(args.repeats):
        q, k, v, g = draw()
        with backends(name):
            got = attention_grads(q.bfloat16(), k.bfloat16(), v.bfloat16(), g.bfloat16(), scale)
        row["nonfinite"] += int(not all(torch.isfinite(t).all() for t in got))
        with backends("math"):
            exact = attention_grads(q, k, v, g, scale)
        worst = max(worst, *((a.float() - b).norm().item() / b.norm().item() for a, b in zip(got, exact, strict=True)))
    row["rel_err"] = worst
    q, k, v, g = (t.bfloat16() for t in draw())
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    with backends(name):
        attention_grads(q, k, v, g, scale)
        start.record()
        for _ in range(args.repeats):
            attention_grads(q, k, v, g, scale)
        end.record()
    torch.cuda.synchronize(dev)
    return row | {"ms": start.elapsed_time(end) / args.repeats}


TRAIN_VARIANTS = {  # name → (leave cuDNN's attention out, torch.compile, the mHC ops)
    "default": (False, False, "auto"),
    "no-cudnn": (True, False, "auto"),
    "compiled": (False, True, "auto"),
    "compiled-no-cudnn": (True, True, "auto"),
    "reference-ops": (False, False, "reference"),
}


def train_rows(args: argparse.Namespace, save: Callable[[list[dict], str | None], None]) -> list[dict]:
    """The ``mup`` configuration trained at ``--train-width`` as a sweep trains it (``mhc-mup transfer``'s own
    path: 4 learning rates from ``--train-lr`` up, ``--train-in-turns`` runs taking turns on the GPU, each step
    captured), in each of ``--train-variants``: attention with or without cuDNN's kernel, compiled or not, the
    fused mHC kernels or the reference ops. Per run: steps done, divergence, final losses; per variant, wall
    seconds (compilation included). cuDNN's kernel is left out by the sweep's own setting (``attention``), not by a
    context around the sweep: a compiled variant would otherwise reuse the graph, and its kernel, that an earlier
    variant of the same width traced in this process. ``save(rows, variant)`` is called before each variant and
    after the last, so that a variant that hangs leaves the rows so far and its own name behind."""
    import tempfile

    from mhc_mup.training.transfer import BUILTIN_CONFIGS, TransferConfig, run_transfer

    lr = 2.0 ** float(args.train_lr.removeprefix("2^")) if args.train_lr.startswith("2^") else float(args.train_lr)
    rows = []
    for name in args.train_variants.split(","):
        save(rows, name)
        no_cudnn, compiled, kernels = TRAIN_VARIANTS[name]
        cfg = TransferConfig().with_leaves(
            configs=(BUILTIN_CONFIGS["mup"],), widths=(args.train_width,), lrs=tuple(lr * 2**k for k in range(4)),
            seeds=1, steps=args.train_steps, batch_size=args.batch, seq_len=args.seq, eval_every=0, eval_batches=4,
            base_d=128, device="cuda", torch_compile=compiled, kernels=kernels, n_boot=50,
            attention="no-cudnn" if no_cudnn else "auto",
        )  # fmt: skip
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            result = run_transfer(cfg, out, runs_per_gpu=args.train_in_turns)
        wall = time.perf_counter() - t0
        for r in result.runs.itertuples():
            rows.append({"variant": name, "in_turns": args.train_in_turns, "width": r.width, "log2_lr": r.log2_lr,
                         "steps_done": r.steps_done, "diverged": r.diverged_reason or False,
                         "final_train_loss": r.final_train_loss, "final_val_loss": r.final_val_loss,
                         "mhc_kernels": r.mhc_kernels, "variant_wall_s": wall})  # fmt: skip
            print(rows[-1], flush=True)
    save(rows, None)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--widths", default="256,512,1024,2048", help="model widths d (default 256,512,1024,2048)")
    p.add_argument("--heads", type=int, default=4, help="attention heads (default 4, as a transfer sweep)")
    p.add_argument("--batch", type=int, default=32, help="sequences per call (default 32)")
    p.add_argument("--seq", type=int, default=256, help="bytes per sequence (default 256)")
    p.add_argument("--repeats", type=int, default=20, help="calls per measurement (default 20)")
    p.add_argument("--input-rms", type=float, default=1.0, help="RMS of q, k, v's entries (default 1)")
    p.add_argument("--train-width", type=int, help="also train mup at this width, with and without cuDNN attention")
    p.add_argument("--train-lr", default="2^-10", help="its base learning rate (default 2^-10)")
    p.add_argument("--train-steps", type=int, default=300, help="its steps (default 300)")
    p.add_argument("--train-in-turns", type=int, default=4,
                   help="its runs taking turns on the GPU, as --runs-per-gpu (default 4, as issue 20's sweep)")
    p.add_argument("--train-variants", default=",".join(TRAIN_VARIANTS),
                   help=f"comma-separated, of {', '.join(TRAIN_VARIANTS)} (default: all)")
    p.add_argument("--json", type=Path, help="write the rows here")
    args = p.parse_args(argv)
    if unknown := [v for v in args.train_variants.split(",") if v not in TRAIN_VARIANTS]:
        p.error(f"unknown --train-variants {unknown[0]!r}; choose from {', '.join(TRAIN_VARIANTS)}")
    if not torch.cuda.is_available():
        print("bench_attention: needs a CUDA GPU (the backends it compares are CUDA kernels)", file=sys.stderr)
        return 2
    dev = torch.device("cuda")
    cudnn = torch.backends.cudnn.version()
    print(f"{torch.cuda.get_device_name(dev)}, torch {torch.__version__}, cuDNN {cudnn}", flush=True)
    rows = []
    for d in (int(w) for w in args.widths.split(",")):
        d_head = d // args.heads
        for rule, scale in (("mup", 1 / d_head), ("sp", d_head**-0.5)):
            for name in BACKENDS:
                row = {"width": d, "d_head": d_head, "scale": rule} | check_backend(
                    name, (args.batch, args.heads, args.seq, d_head), scale, args, dev)  # fmt: skip
                rows.append(row)
                print(row, flush=True)
    settings = {k: v for k, v in vars(args).items() if k != "json"} | {"cudnn": cudnn}

    def save(trained: list[dict], in_progress: str | None) -> None:
        write_results(args.json, dev, rows, trained=trained, training_variant_in_progress=in_progress, **settings)

    save([], None)
    if args.train_width:
        train_rows(args, save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
