"""The fused Triton mHC kernels against the reference ops, and the dispatch between them.

The kernel checks run on CUDA (through the device tool; the log of the last passing run is in
benchmarks/results/) and, without a GPU, in Triton's interpreter on the CPU (conftest sets
``TRITON_INTERPRET=1`` there), so CI runs the kernels' own code too. Every check draws fresh random
inputs (the seed is printed on failure), poisons every output buffer with NaN first, and compares
with autograd through :mod:`mhc_mup.mhc.ops` in fp64.
"""

from __future__ import annotations

import copy
import math
import os
import secrets
from types import SimpleNamespace

import pytest
import torch

from mhc_mup.kernels import fused
from mhc_mup.mhc import ops
from mhc_mup.training.model import MHCLM, ModelConfig

TOL = 1e-5  # relative error, ‖fused − fp64 reference‖ / ‖fp64 reference‖, for fp32 streams


def _triton_skip_reason(device: str) -> str | None:
    if fused._TRITON_MISSING:
        return "Triton is not installed: pip install -e '.[test]' brings it for the interpreter checks"
    if device == "cuda":
        return None if torch.cuda.is_available() else "no CUDA device: the GPU run goes through the device tool"
    if torch.cuda.is_available():
        return "a CUDA device is present: the kernels are checked on it instead of in the interpreter"
    if os.environ.get("TRITON_INTERPRET") != "1":
        return "TRITON_INTERPRET is not 1 (tests/conftest.py sets it before Triton is imported)"
    import triton

    major, minor = (int(p) for p in triton.__version__.split(".")[:2])
    if (major, minor) < (3, 9):
        return f"Triton {triton.__version__}'s interpreter fails on numpy 2 scalars; 3.9 fixed it"
    return None


DEVICES = [
    pytest.param(dev, marks=pytest.mark.skipif(reason is not None, reason=str(reason)))
    for dev, reason in ((dev, _triton_skip_reason(dev)) for dev in ("cpu", "cuda"))
]


@pytest.fixture
def poisoned(monkeypatch):
    """Every buffer the kernels allocate starts as NaN, so an unwritten element fails the comparison."""
    from mhc_mup.kernels import triton_kernels

    def nan_buffer(shape, dtype, device):
        return torch.full(shape, float("nan"), dtype=dtype, device=device)

    monkeypatch.setattr(triton_kernels, "_new", nan_buffer)


@pytest.fixture
def rng(request) -> torch.Generator:
    """A fresh seed per check, printed so that a failure can be replayed."""
    seed = secrets.randbits(48)
    print(f"seed {seed} for {request.node.name}")
    return torch.Generator().manual_seed(seed)


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    assert torch.isfinite(a).all(), "non-finite (or unwritten) elements"
    return ((a.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-300)).item()


def within_one_bf16_ulp(a: torch.Tensor, ref: torch.Tensor) -> bool:
    """Element by element within one bf16 ulp (2^-7 relative) of the fp64 reference, plus fp32 round-off
    (1e-6 of the largest magnitude) for elements that are small differences of large terms."""
    return bool(((a.double() - ref).abs() <= 2**-7 * ref.abs() + 1e-6 * ref.abs().max()).all())


def _inputs(T, n_s, d, comb_scale, gen, device, dtype=torch.float32):
    """Streams of RMS ~1 and generator parameters whose comb logits have std ≈ ``comb_scale``."""
    rows = (2 + n_s) * n_s
    x = torch.randn(T, n_s, d, generator=gen).to(device, dtype)
    fn = (torch.randn(rows, n_s * d, generator=gen) / math.sqrt(n_s * d)).to(device)
    scale = torch.tensor([0.8, 1.3, comb_scale]) * (torch.rand(3, generator=gen) * 0.4 + 0.8)
    base = torch.randn(rows, generator=gen) * 0.5
    return x, fn, scale.to(device), base.to(device)


def _reference_pre(x, fn, scale, base, K, grads, dtype=torch.float64):
    leaves = [t.detach().to(dtype).requires_grad_() for t in (x, fn, scale, base)]
    outs = ops.hc_pre(*leaves, K=K)
    loss = sum((o * g.to(dtype)).sum() for o, g in zip(outs, grads, strict=True))
    return [o.detach() for o in outs], torch.autograd.grad(loss, leaves)


def _fused_pre(x, fn, scale, base, K, grads):
    """The fused op's outputs, and ∂/∂(x, fn, scale, base) through its registered backward, for ``grads``."""
    leaves = [t.detach().requires_grad_() for t in (x, fn, scale, base)]
    outs = fused.hc_pre(*leaves, K)
    return [o.detach() for o in outs], torch.autograd.grad(outs, leaves, grads)


def within_fp32_roundoff(got, exact, fp32) -> tuple[bool, float, float]:
    """``got`` within 1e-5 of the fp64 ``exact``, or, where the problem's conditioning puts fp32 itself further
    away, within 8× the error of the fp32 reference ops (``fp32``): 'to fp32 round-off'. (The reference's
    own error is one draw of a random-looking round-off and now and then lands low: in the interpreter the
    kernels' error has been up to 4.6× it, 0.4× at the 240-draw maximum otherwise; a wrong kernel is O(1).)"""
    err, err32 = rel_err(got, exact), rel_err(fp32, exact)
    return err <= max(TOL, 8 * err32), err, err32


# (T, n_s, d): T not a multiple of the token block, over one block or under it; d a multiple of the column block
# (∂L/∂x's one-stream-per-block path) or not; n_s padded (3) or not (2, 4, 8). In the interpreter a shape costs
# about a second, so each one there adds a case the others lack. (A fifth, (11, 2, 16), was dropped: T under one
# token block is (9, 8, 8)'s case; d a whole number of the projection's 16-column chunks, n_s = 2, (21, 2, 128)'s.)
SHAPES = {
    "cpu": [(37, 4, 40), (19, 3, 24), (9, 8, 8), (21, 2, 128)],
    "cuda": [(1000, 4, 1024), (333, 3, 200), (77, 8, 96), (130, 2, 256)],
}
# K and the logits' scale reach only the Sinkhorn in registers, which works token by token on an NP×NP tile:
# of the shapes, only n_s and its padding vary what it computes. So V4's setting (K = 20, logits ~1) runs every
# shape and the other settings run, in the interpreter, the shapes of padded n_s and of the largest n_s (one with
# T over one token block, one with T under it).
SINKHORN_SHAPES = {"cpu": [(19, 3, 24), (9, 8, 8)], "cuda": SHAPES["cuda"]}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("K", [1, 2, 20])
@pytest.mark.parametrize("comb_scale", [1.0, 60.0], ids=["logits~1", "exp-underflow"])
def test_hc_pre_matches_reference_forward_and_backward(device, K, comb_scale, poisoned, rng):
    """y, post, comb and ∂/∂(x, fn, scale, base) within 1e-5 of fp64 autograd through the reference ops (or
    within 8× the fp32 reference ops' own error where conditioning puts that above 1e-5); with comb logits
    of std 60 the softmax's small entries underflow in fp32 (e^-104), as in the field."""
    underflows = 0
    shapes = SHAPES[device] if (K, comb_scale) == (20, 1.0) else SINKHORN_SHAPES[device]
    for T, n_s, d in shapes:
        x, fn, scale, base = _inputs(T, n_s, d, comb_scale, rng, device)
        grads = [torch.randn(shape, generator=rng).to(device) for shape in ((T, d), (T, n_s), (T, n_s, n_s))]
        (y, post, comb), got = _fused_pre(x, fn, scale, base, K, grads)
        ref_out, ref_grads = _reference_pre(x, fn, scale, base, K, grads)
        out32, grads32 = _reference_pre(x, fn, scale, base, K, grads, torch.float32)
        names = ("y", "post", "comb", "grad x", "grad fn", "grad scale", "grad base")
        for name, a, b, c in zip(names, (y, post, comb, *got), (*ref_out, *ref_grads), (*out32, *grads32), strict=True):
            ok, err, err32 = within_fp32_roundoff(a, b, c)
            assert ok, (name, (T, n_s, d), err, err32)
        z = ops.gate_logits(ops.hc_mixes(x, fn), scale, base, n_s)[2]
        underflows += int((torch.softmax(z, -1) == 0).sum())
    if comb_scale > 1:  # the regime is the one named: softmax entries are exactly 0 in fp32
        assert underflows > 0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("tiles", [(16, 32, 4, 2), (32, 64, 8, 1)], ids=["16x32-2stages", "32x64-8warps"])
def test_fp32_input_gradient_under_other_tiles_matches_reference(device, tiles, monkeypatch, poisoned, rng):
    """fp32 streams' ∂L/∂x and ∂L/∂fn kernel with other tiles (``GRAD_FP32``, the variants bench_fused.py --tune
    --stream-dtype float32 times): the same agreement with fp64 autograd. The chunks are smaller than the shapes,
    so the kernel loops over tokens and masks partial column blocks."""
    from mhc_mup.kernels import triton_kernels

    monkeypatch.setattr(triton_kernels, "GRAD_FP32", tiles)
    for T, n_s, d in SHAPES[device][:2]:
        x, fn, scale, base = _inputs(T, n_s, d, 1.0, rng, device)
        grads = [torch.randn(shape, generator=rng).to(device) for shape in ((T, d), (T, n_s), (T, n_s, n_s))]
        _, got = _fused_pre(x, fn, scale, base, 20, grads)
        _, ref_grads = _reference_pre(x, fn, scale, base, 20, grads)
        _, grads32 = _reference_pre(x, fn, scale, base, 20, grads, torch.float32)
        for name, a, b, c in zip(("grad x", "grad fn"), got[:2], ref_grads[:2], grads32[:2], strict=True):
            ok, err, err32 = within_fp32_roundoff(a, b, c)
            assert ok, (name, tiles, (T, n_s, d), err, err32)


@pytest.mark.parametrize("device", DEVICES)
def test_hc_post_matches_reference_forward_and_backward(device, poisoned, rng):
    for T, n_s, d in SHAPES[device]:
        x = torch.randn(T, n_s, d, generator=rng).to(device)
        f = torch.randn(T, d, generator=rng).to(device)
        post = (2 * torch.rand(T, n_s, generator=rng)).to(device)
        comb = torch.softmax(torch.randn(T, n_s, n_s, generator=rng), -1).to(device)
        out = fused.hc_post(f, x, post, comb)
        g = torch.randn(out.shape, generator=rng).to(device)
        leaves = [t.double().requires_grad_() for t in (f, x, post, comb)]
        ref = ops.hc_post(*leaves)
        ref_grads = torch.autograd.grad((ref * g.double()).sum(), leaves)
        assert rel_err(out, ref) <= TOL
        got = fused._hc_post_backward(g, f, x, post, comb)
        for name, a, b in zip(("f", "x", "post", "comb"), got, ref_grads, strict=True):
            assert rel_err(a, b) <= TOL, (name, (T, n_s, d), rel_err(a, b))


def _sublayer_grads(inputs, cotangents, hc_pre_, hc_post_, dtype):
    """∂/∂(x, fn, scale, base, f) of ``⟨y, gy⟩ + ⟨hc_post(f, x, post, comb), g_out⟩`` with ``(y, post, comb) =
    hc_pre(x)``: x feeds both ops, as in a sublayer. ``hc_pre_`` may return a route for ``hc_post_``."""
    leaves = [t.detach().to(dtype).requires_grad_() for t in inputs]
    y, post, comb, *route = hc_pre_(*leaves[:4])
    out = hc_post_(leaves[4], leaves[0], post, comb, *route)
    gy, g_out = (g.to(dtype) for g in cotangents)
    return torch.autograd.grad((y * gy).sum() + (out * g_out).sum(), leaves), route


@pytest.mark.parametrize("device", DEVICES)
def test_routed_sublayer_adds_hc_posts_gradient_of_x_inside_hc_pres_backward(device, poisoned, rng):
    """hc_pre and hc_post on the same x, with hc_post's gradient of x routed into hc_pre's backward: every
    gradient (x's is the sum of both ops') within fp32 round-off of fp64 autograd through the reference ops,
    where autograd adds the two; and the route itself is zeros held in one element."""
    for T, n_s, d in SHAPES[device]:
        inputs = (*_inputs(T, n_s, d, 1.0, rng, device), torch.randn(T, d, generator=rng).to(device))
        cotangents = (torch.randn(T, d, generator=rng).to(device), torch.randn(T, n_s, d, generator=rng).to(device))
        got, (route,) = _sublayer_grads(
            inputs, cotangents, lambda *a: fused.hc_pre_routed(*a, K=20), fused.hc_post, torch.float32
        )
        reference = lambda *a: ops.hc_pre(*a, K=20)  # noqa: E731
        exact, _ = _sublayer_grads(inputs, cotangents, reference, ops.hc_post, torch.float64)
        fp32, _ = _sublayer_grads(inputs, cotangents, reference, ops.hc_post, torch.float32)
        for name, a, b, c in zip(("x", "fn", "scale", "base", "f"), got, exact, fp32, strict=True):
            ok, err, err32 = within_fp32_roundoff(a, b, c)
            assert ok, (name, (T, n_s, d), err, err32)
        assert route.shape == (T, n_s, d) and route.stride() == (0, 0, 0) and not route.any()


def test_routed_hc_post_checks_the_routes_shape():
    x, post, comb = torch.zeros(2, 4, 8), torch.zeros(2, 4), torch.zeros(2, 4, 4)
    with pytest.raises(ValueError, match=r"x_grad_route has shape \(2, 4, 9\), expected \(2, 4, 8\)"):
        fused.hc_post(torch.zeros(2, 8), x, post, comb, x_grad_route=torch.zeros(2, 4, 9))


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_streams_round_once(device, poisoned, rng):
    """With bf16 streams the fp32 results match the reference to fp32 round-off (1e-5, or 8× the fp32 reference
    ops' own error where conditioning puts that higher: ∂L/∂scale is a sum of T·n_s terms that cancel, and the
    fp32 reference ops are up to 8e-6 off it at d = 1024) and the bf16 ones are the reference's values
    rounded once: within one bf16 ulp (2^-7 relative) element by element. (The GPU rounds to nearest, half
    an ulp; Triton's interpreter truncates.) The dots against bf16 x run on bf16 tensor cores with the fp32
    factor split in three parts: exact products, so fp32 accuracy."""
    for T, n_s, d in (SHAPES[device][0], SHAPES[device][-1]):
        x, fn, scale, base = _inputs(T, n_s, d, 1.0, rng, device, torch.bfloat16)
        grads = [torch.randn((T, d), generator=rng).to(device, torch.bfloat16)]
        grads += [torch.randn(shape, generator=rng).to(device) for shape in ((T, n_s), (T, n_s, n_s))]
        (y, post, comb), got = _fused_pre(x, fn, scale, base, 20, grads)
        ref_out, ref_grads = _reference_pre(x, fn, scale, base, 20, grads)
        out32, grads32 = _reference_pre(x, fn, scale, base, 20, grads, torch.float32)
        assert y.dtype == got[0].dtype == torch.bfloat16
        for a, b in ((y, ref_out[0]), (got[0], ref_grads[0])):
            assert within_one_bf16_ulp(a, b), (T, n_s, d)
        fp32_results = zip(
            ("post", "comb", "grad fn", "grad scale", "grad base"),
            (post, comb, *got[1:]),
            (*ref_out[1:], *ref_grads[1:]),
            (*out32[1:], *grads32[1:]),
            strict=True,
        )
        for name, a, b, c in fp32_results:
            ok, err, err32 = within_fp32_roundoff(a, b, c)
            assert ok, (name, (T, n_s, d), err, err32)
        f = torch.randn(T, d, generator=rng).to(device, torch.bfloat16)
        out = fused.hc_post(f, x, post, comb)
        ref = ops.hc_post(f.double(), x.double(), post.double(), comb.double())
        assert out.dtype == torch.bfloat16
        assert within_one_bf16_ulp(out, ref)


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_split_is_exact(device, poisoned, rng):
    """The kernels' three-way bf16 split of an fp32 value sums back to it exactly (the basis of the exact bf16
    tensor-core dots), largest part first, for |w| ≥ 2^-103, where the smallest part is still a normal number;
    below that what is lost is under 2^-126 in absolute value."""
    from mhc_mup.kernels import triton_kernels

    mantissa = torch.rand(4096, generator=rng) + 1.0
    exponent = torch.randint(-103, 127, (4096,), generator=rng).float()
    sign = torch.randint(0, 2, (4096,), generator=rng) * 2.0 - 1.0
    w = (sign * mantissa * torch.exp2(exponent)).to(device)
    parts = triton_kernels.split_bf16(w)
    assert parts.dtype == torch.bfloat16
    hi, mid, lo = parts.double()
    assert torch.equal(hi + mid + lo, w.double())
    assert (hi.abs() >= mid.abs()).all() and (mid.abs() >= lo.abs()).all()


@pytest.mark.parametrize("device", DEVICES)
def test_custom_ops_pass_opcheck(device, rng):
    """Schemas, fake (meta) implementations and autograd registration as torch.compile needs them."""
    x, fn, scale, base = _inputs(5, 4, 16, 1.0, rng, device)
    torch.library.opcheck(torch.ops.mhc_mup.hc_pre, (x, fn.requires_grad_(), scale, base, 3, 1e-6, 1e-6))
    post = torch.rand(5, 4, device=device)
    comb = torch.rand(5, 4, 4, device=device)
    f = torch.randn(5, 16, device=device, requires_grad=True)
    torch.library.opcheck(torch.ops.mhc_mup.hc_post, (f, x.requires_grad_(), post, comb))
    route = torch.zeros((), device=device).expand(x.shape).requires_grad_()
    torch.library.opcheck(torch.ops.mhc_mup.hc_post_routed, (f, x, post, comb, route))


def _asymmetric_model(cfg: ModelConfig, kernels: str) -> MHCLM:
    """An MHCLM whose gates start away from their symmetric init (random bases, larger generators), so that
    the streams differ and no gradient is a tiny difference of large terms (at init the head's are)."""
    model = MHCLM(cfg, seed=0, kernels=kernels)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("hc.base", "head.base")):
                p.copy_(torch.randn(p.shape, generator=gen))
            elif name.endswith(("hc.fn", "head.fn")):
                p.mul_(20)
    return model


def _model_grads(model, tokens):
    model.zero_grad()
    loss = model(tokens).float().square().mean()
    loss.backward()
    return loss.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("device", DEVICES)
def test_model_with_fused_kernels_matches_reference_model(device):
    """A whole MHCLM through the kernels: each parameter's gradient is within 1e-5 of the fp64 model's, or
    within 4× the fp32 reference model's own error, or within fp32 round-off of the largest gradient
    (1e-7·max‖g‖): a few gradients (head.scale's) are 1e-5 of the largest and small differences of large
    terms, where any fp32 summation order is 1e-4 off relative to themselves. A wrong kernel is off by O(1)."""
    cfg = ModelConfig(d=32 if device == "cpu" else 256, depth=2, heads=2, n_s=4, K=20)
    tokens = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0)).to(device)
    ref = _asymmetric_model(cfg, "reference")
    fast = copy.deepcopy(ref).set_kernels("triton").to(device)
    exact = copy.deepcopy(ref).to(device).double()
    ref = ref.to(device)
    _, g_ref = _model_grads(ref, tokens)
    loss_fast, g_fast = _model_grads(fast, tokens)
    loss_64, g_64 = _model_grads(exact, tokens)
    assert abs(loss_fast.item() - loss_64.item()) <= TOL * abs(loss_64.item())
    g_max = max(g.norm().item() for g in g_64.values())
    for name, g in g_64.items():
        err_fast, err_ref = ((g_fast[name].double() - g).norm().item(), (g_ref[name].double() - g).norm().item())
        bound = max(TOL * g.norm().item(), 4 * err_ref, 1e-7 * g_max)
        assert err_fast <= bound, (name, err_fast / g.norm().item(), err_ref / g.norm().item(), g.norm().item() / g_max)


@pytest.mark.parametrize("device", DEVICES)
def test_taps_under_a_hook_fall_back_to_the_reference_ops(device):
    """A forward hook on a gate tap (the coordinate check's) sees the logits: that sublayer runs the reference."""
    model = MHCLM(ModelConfig(d=16, depth=1, heads=2, n_s=4, K=2), seed=0, kernels="triton").to(device)
    hc = model.blocks[0].attn.hc
    x = torch.randn(1, 3, 4, 16, device=device)
    assert hc.fused_for(x)
    seen = []
    handle = hc.comb_logits.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    assert not hc.fused_for(x)
    model(torch.zeros(1, 3, dtype=torch.long, device=device))
    handle.remove()
    assert seen == [(1, 3, 4, 4)]


# ── dispatch (no Triton needed) ────────────────────────────────────────────────────────────────
def test_reference_kernels_never_dispatch_to_triton():
    assert not fused.use_triton("reference", torch.zeros(2, 4, 8))


def test_auto_uses_the_reference_ops_off_cuda():
    assert not fused.use_triton("auto", torch.zeros(2, 4, 8))


def test_triton_where_it_cannot_run_says_why(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(fused.KernelUnavailableError, match=r"kernels='triton' cannot run: .*(not installed|CUDA)"):
        fused.use_triton("triton", torch.zeros(2, 4, 8))
    monkeypatch.setattr(fused, "_TRITON_MISSING", True)
    assert fused.triton_unavailable_reason(torch.device("cuda")) == (
        "Triton is not installed (CUDA builds of PyTorch ship it)"
    )


@pytest.mark.parametrize(
    ("shape", "dtype", "match"),
    [((2, 9, 8), torch.float32, "n_s <= 8, got n_s=9"), ((2, 4, 8), torch.float64, "got torch.float64")],
)
def test_auto_declines_what_the_kernels_do_not_cover(monkeypatch, shape, dtype, match):
    monkeypatch.setattr(fused, "triton_unavailable_reason", lambda device: None)
    x = torch.zeros(shape, dtype=dtype)
    assert not fused.use_triton("auto", x)
    with pytest.raises(fused.KernelUnavailableError, match=match):
        fused.use_triton("triton", x)


def test_auto_dispatches_cuda_streams(monkeypatch):
    monkeypatch.setattr(fused, "triton_unavailable_reason", lambda device: None)
    streams = SimpleNamespace(shape=(2, 4, 8), device=torch.device("cuda"), dtype=torch.bfloat16)
    assert fused.use_triton("auto", streams)


def test_unknown_kernel_choice_is_named():
    with pytest.raises(ValueError, match="kernels must be one of auto, reference, triton, got 'fast'"):
        MHCLM(ModelConfig(d=16, depth=1, heads=2), kernels="fast")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (((2, 4, 8), (24, 30), (3,), (24,), 20), r"expected fn \(24, 32\)"),
        (((2, 4, 8), (24, 32), (3,), (24,), 0), "K must be an integer >= 1, got 0"),
        (((2, 9, 8), (99, 72), (3,), (99,), 20), "1 <= n_s <= 8, got n_s=9"),
    ],
)
def test_fused_hc_pre_rejects_bad_shapes(args, match):
    xs, fs, ss, bs, K = args
    with pytest.raises(ValueError, match=match):
        fused.hc_pre(torch.zeros(xs), torch.zeros(fs), torch.zeros(ss), torch.zeros(bs), K)


def test_bf16_stream_config_is_validated_and_recorded():
    with pytest.raises(ValueError, match="stream_dtype must be one of float32, bfloat16, got 'fp8'"):
        ModelConfig(stream_dtype="fp8")
    model = MHCLM(ModelConfig(d=16, depth=1, heads=2, stream_dtype="bfloat16"), seed=0)
    assert model.get_extra_state()["config"]["stream_dtype"] == "bfloat16"
    logits = model(torch.zeros(1, 4, dtype=torch.long))  # CPU, no autocast: branches upcast the bf16 streams
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()


def test_state_dicts_saved_before_stream_dtype_still_load():
    model = MHCLM(ModelConfig(d=16, depth=1, heads=2), seed=0)
    state = model.state_dict()
    del state["_extra_state"]["config"]["stream_dtype"]
    MHCLM(ModelConfig(d=16, depth=1, heads=2), seed=1).load_state_dict(state)


# ── GPU only: whole models under torch.compile, and a long training run ─────────────────────────
cuda_only = pytest.mark.skipif(_triton_skip_reason("cuda") is not None, reason=str(_triton_skip_reason("cuda")))


@cuda_only
def test_compiled_model_matches_eager_fused_model():
    """torch.compile(fullgraph=True) traces the custom ops (no graph break) and computes the same gradients."""
    cfg = ModelConfig(d=256, depth=2, heads=4, n_s=4, K=20)
    tokens = torch.randint(0, 256, (4, 64), device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    eager = _asymmetric_model(cfg, "triton").cuda()
    twin = copy.deepcopy(eager)
    loss_e, g_e = _model_grads(eager, tokens)
    loss_c, _ = _model_grads(torch.compile(twin, fullgraph=True), tokens)
    g_c = {n: p.grad for n, p in twin.named_parameters()}
    assert abs(loss_c.item() - loss_e.item()) <= TOL * abs(loss_e.item())
    for name, g in g_e.items():
        assert rel_err(g_c[name], g) <= 1e-4, name  # inductor fuses the branches' fp32 ops differently


@cuda_only
@pytest.mark.parametrize("kernels", ["triton", "reference"])
def test_1000_compiled_bf16_training_steps_have_finite_gradients(kernels):
    """1000 AdamW steps of a compiled 4-layer mHC LM on text, bf16 autocast and bf16 streams, K = 20: every
    gradient of every step is finite (one public port compiled the Sinkhorn divisions into inf gradients;
    'reference' checks that inductor's compilation of our reference ops does not either), and it learns."""
    from mhc_mup.training.data import load_corpus, sample_batch
    from mhc_mup.training.step import train_step

    corpus = load_corpus()
    cfg = ModelConfig(d=256, depth=4, heads=4, n_s=4, K=20, stream_dtype="bfloat16")
    model = MHCLM(cfg, seed=0, kernels=kernels).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    params = list(model.parameters())
    model = torch.compile(model)
    step = train_step
    finite = torch.ones((), dtype=torch.bool, device="cuda")
    gen = torch.Generator().manual_seed(0)
    losses = []
    for i in range(1000):
        x, y = sample_batch(corpus.train, 16, 256, gen)
        loss = step(model, opt, x, y, torch.device("cuda"))
        norms = torch._foreach_norm([p.grad for p in params])
        finite &= torch.stack(norms).isfinite().all() & loss.isfinite()
        if i % 100 == 0 or i == 999:
            losses.append(loss.item())
            assert finite.item(), f"non-finite gradient or loss by step {i}"
    print(f"{kernels}: loss every 100 steps {[round(v, 3) for v in losses]}")
    assert losses[-1] < losses[0] - 1.0
