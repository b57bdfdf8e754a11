"""The mHC language model: its blocks are V4's ops, the control has no mHC, the init follows the rules,
and the optimizer groups' multipliers are exact and survive deepcopy, pickling and state_dict round trips."""

from __future__ import annotations

import copy
import io
import math
import pickle
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from mhc_mup.mhc.ops import hc_head, hc_post, hc_pre
from mhc_mup.mhc.parameterizations import PARAMETERIZATIONS
from mhc_mup.training.model import (
    MHCLM,
    HeadCollapse,
    HyperConnection,
    ModelConfig,
    ModelConfigError,
    attention_backends,
)
from mhc_mup.training.width_rules import (
    KINDS,
    WidthParamError,
    WidthParameterization,
    lr_multipliers,
    make_optimizer,
    param_groups,
    parameter_kind,
)

SMALL = ModelConfig(d=32, depth=2, heads=4, n_s=4, K=20)


def _model(model: str = "mup", hc: str = "mup", d: int = 32, base_d: int = 16, **kw) -> MHCLM:
    return MHCLM(SMALL.replace(d=d, **kw), WidthParameterization(model, PARAMETERIZATIONS[hc], base_d), seed=3)


@pytest.fixture
def tokens() -> torch.Tensor:
    return torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(0))


def test_forward_shape_and_finite_loss(tokens):
    model = _model()
    logits = model(tokens)
    assert logits.shape == (2, 12, 256)
    loss = F.cross_entropy(logits.flatten(0, 1), tokens.flatten())
    assert torch.isfinite(loss)
    # a byte model at init predicts close to uniformly: loss near log(256)
    assert abs(loss.item() - math.log(256)) < 1.5


def test_hyper_connection_equals_hc_pre_and_sublayer_equals_hc_post():
    model = _model(hc="hf-v4")  # scale 1: the gates are far from trivial
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 5, 4, 32, generator=gen)
    sub = model.blocks[0].attn
    hc: HyperConnection = sub.hc
    with torch.no_grad():
        hc.base.copy_(torch.randn(hc.base.shape, generator=gen) * 0.5)
        y, post, comb = hc(x)
        y_ref, post_ref, comb_ref = hc_pre(x, hc.fn, hc.scale, hc.base, K=20)
        torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
        torch.testing.assert_close(post, post_ref, rtol=0, atol=0)
        torch.testing.assert_close(comb, comb_ref, rtol=0, atol=0)
        out = sub(x)
        ref = hc_post(sub.branch(sub.norm(y_ref)), x, post_ref, comb_ref)
        torch.testing.assert_close(out, ref, rtol=0, atol=0)
        head: HeadCollapse = model.head
        torch.testing.assert_close(head(x), hc_head(x, head.fn, head.scale, head.base), rtol=0, atol=0)


@pytest.mark.parametrize(("hc", "qk_norm"), [(True, False), (False, False), (False, True)],
                         ids=["mhc", "control", "control-qk-norm"])  # fmt: skip
def test_norms_get_their_input_in_their_gains_dtype_under_autocast(hc, qk_norm, tokens):
    """bf16 streams under bf16 autocast: every RMSNorm sees its input in its gain's dtype (fp32), so it computes
    in fp32 and takes torch's fused kernel. Given bf16 and fp32, torch.rms_norm warns and falls back to a
    composite of small ops, which made bf16-stream eager steps slower than fp32-stream ones on the H100."""
    model = MHCLM(ModelConfig(d=32, depth=1, heads=4, n_s=4, K=3, stream_dtype="bfloat16", hc=hc, qk_norm=qk_norm),
                  seed=0)  # fmt: skip
    seen = []
    for module in model.modules():
        if isinstance(module, nn.RMSNorm):
            module.register_forward_pre_hook(lambda m, args: seen.append((args[0].dtype, m.weight.dtype)))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Mismatch dtype between input and weight")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(tokens).float().mean()
        loss.backward()
    assert len(seen) == 3 + 2 * qk_norm and all(a == b == torch.float32 for a, b in seen), seen


def test_embedding_is_copied_into_every_stream(tokens):
    model = _model()
    seen = {}
    model.blocks[0].attn.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    model(tokens)
    x = seen["x"]
    assert x.shape == (2, 12, 4, 32)
    for i in range(4):
        torch.testing.assert_close(x[..., i, :], model.embed(tokens))
    # materialised, not a stride-0 view: the fused ops would each copy a view, forward and backward
    assert x.is_contiguous()


def test_control_has_no_mhc_parameters_and_same_branches(tokens):
    control = MHCLM(SMALL.replace(hc=False), WidthParameterization(), seed=3)
    names = [n for n, _ in control.named_parameters()]
    assert not any(k.startswith("hc_") for k in {parameter_kind(n) for n in names})
    assert not any(".hc." in n or n.startswith("head.") for n in names)
    assert control.head is None and all(b.attn.hc is None and b.mlp.hc is None for b in control.blocks)
    mhc = _model(base_d=32)
    non_hc = {n: p.shape for n, p in mhc.named_parameters() if not parameter_kind(n).startswith("hc_")}
    assert non_hc == {n: p.shape for n, p in control.named_parameters()}
    assert control(tokens).shape == (2, 12, 256)


def test_parameter_kinds_cover_the_model():
    model = _model()
    kinds = {n: parameter_kind(n) for n, _ in model.named_parameters()}
    assert kinds["embed.weight"] == "embedding" and kinds["readout.weight"] == "readout"
    assert kinds["blocks.0.attn.hc.fn"] == "hc_fn" and kinds["head.scale"] == "hc_scale"
    assert kinds["blocks.1.mlp.norm.weight"] == "gain" and kinds["norm_f.weight"] == "gain"
    assert kinds["blocks.0.attn.branch.q.weight"] == "hidden" and kinds["blocks.1.mlp.branch.down.weight"] == "hidden"
    assert set(kinds.values()) == set(KINDS)
    with pytest.raises(WidthParamError):
        parameter_kind("blocks.0.attn.branch.q.bias")


@pytest.mark.parametrize("model_param", ["sp", "mup"])
def test_init_follows_the_rules(model_param):
    d, base = 256, 32
    model = _model(model_param, "C", d=d, base_d=base, depth=1)
    m = d / base
    std = {n: p.std().item() for n, p in model.named_parameters() if p.numel() > 1}
    assert std["embed.weight"] == pytest.approx(1.0, rel=0.02)
    assert std["blocks.0.attn.branch.q.weight"] == pytest.approx(1 / math.sqrt(d), rel=0.02)
    assert std["blocks.0.mlp.branch.down.weight"] == pytest.approx(1 / math.sqrt(4 * d), rel=0.02)
    readout = 1 / math.sqrt(d * (m if model_param == "mup" else 1))
    assert std["readout.weight"] == pytest.approx(readout, rel=0.03)
    assert torch.all(model.norm_f.weight == 1)
    hc = model.blocks[0].attn.hc
    assert hc.fn.std().item() == pytest.approx(1 / (4 * d), rel=0.02)  # preset C: σ_W = 1/(n_s·d)
    assert hc.scale.tolist() == pytest.approx([0.1] * 3) and torch.all(hc.base == 0)
    assert model.head.fn.shape == (4, 4 * d) and model.head.scale.item() == pytest.approx(0.1)
    d_head = d // 4
    scale = model.blocks[0].attn.branch.scale
    assert scale == pytest.approx(1 / math.sqrt(d_head) if model_param == "sp" else math.sqrt(base // 4) / d_head)


def test_same_seed_same_model_different_seed_different_model():
    a, b = _model(), _model()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    c = MHCLM(SMALL, WidthParameterization(), seed=4)
    assert not torch.equal(a.embed.weight, c.embed.weight)


def test_config_errors_name_the_value():
    with pytest.raises(ModelConfigError, match="d=30 is not divisible by heads=4"):
        ModelConfig(d=30)
    with pytest.raises(ModelConfigError, match="n_s"):
        ModelConfig(n_s=1)
    with pytest.raises(WidthParamError, match="'xp'"):
        WidthParameterization("xp")


# ── attention kernels ───────────────────────────────────────────────────────────────────────────
def sdp_flags() -> dict[str, bool]:
    """Which scaled-dot-product-attention backends PyTorch may pick now: the flags ``sdpa_kernel`` sets."""
    cuda = torch.backends.cuda
    return {"cudnn": cuda.cudnn_sdp_enabled(), "flash": cuda.flash_sdp_enabled(),
            "mem_efficient": cuda.mem_efficient_sdp_enabled(), "math": cuda.math_sdp_enabled()}  # fmt: skip


def test_no_cudnn_attention_leaves_only_cudnn_out_and_restores_the_flags():
    """Inside ``no-cudnn`` every backend but cuDNN's stays allowed and torch.compile's cache keys are tagged; on exit,
    an exception's too, everything is as before; ``auto`` changes nothing."""
    before, tag = sdp_flags(), torch.compiler.config.cache_key_tag
    assert all(before.values())  # PyTorch's default
    with attention_backends("no-cudnn"):
        assert sdp_flags() == {"cudnn": False, "flash": True, "mem_efficient": True, "math": True}
        assert torch.compiler.config.cache_key_tag == f"{tag}+sdpa-without-cudnn"
    assert (sdp_flags(), torch.compiler.config.cache_key_tag) == (before, tag)
    with pytest.raises(RuntimeError, match="inside"), attention_backends("no-cudnn"):
        raise RuntimeError("inside")
    assert (sdp_flags(), torch.compiler.config.cache_key_tag) == (before, tag)
    with attention_backends("auto"):
        assert (sdp_flags(), torch.compiler.config.cache_key_tag) == (before, tag)
    with pytest.raises(ValueError, match="attention must be one of auto, no-cudnn, got 'flash'"):
        attention_backends("flash")


def test_no_cudnn_attention_computes_the_same_function(tokens):
    """The loss and its gradients with cuDNN's kernel left out, and through the math kernel alone, are PyTorch's own
    choice's to fp32 round-off (on the CPU there is no cuDNN kernel: the CPU's flash kernel runs either way)."""
    model = _model()

    def loss_and_grads() -> list[torch.Tensor]:
        model.zero_grad()
        loss = F.cross_entropy(model(tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten())
        loss.backward()
        return [loss.detach(), *(p.grad.clone() for p in model.parameters())]

    free = loss_and_grads()
    with attention_backends("no-cudnn"):
        restricted = loss_and_grads()
    with sdpa_kernel(SDPBackend.MATH):
        math_only = loss_and_grads()
    for a, b, c in zip(free, restricted, math_only, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(c, a, rtol=1e-4, atol=1e-5)


# ── optimizer groups ────────────────────────────────────────────────────────────────────────────
EXPECTED = {  # kind → (SP, µP) multiplier at m = d/base_d = 4, per optimizer; mHC from the mup preset (1/d for fn)
    "adam": {"embedding": (1, 1), "hidden": (1, 1 / 4), "readout": (1, 1 / 4), "gain": (1, 1)},
    "sgd": {"embedding": (1, 4), "hidden": (1, 1), "readout": (1, 1 / 4), "gain": (1, 4)},
}


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("model_param", ["sp", "mup"])
def test_param_groups_carry_the_table_multipliers(optimizer, model_param):
    d = 64
    model = _model(model_param, "mup", d=d, base_d=16)
    groups = param_groups(model, optimizer, 0.5)
    assert [g["kind"] for g in groups] == list(KINDS)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    for g in groups:
        if g["kind"].startswith("hc_"):
            want = 1 / d if g["kind"] == "hc_fn" else 1.0
        else:
            want = EXPECTED[optimizer][g["kind"]][model_param == "mup"]
        assert g["lr_mult"] == pytest.approx(want) and g["lr"] == pytest.approx(0.5 * want)


def _loss(model: MHCLM, tokens: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(tokens).flatten(0, 1).double(), tokens.flatten())


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_one_step_moves_each_group_by_exactly_its_multiplier(optimizer, tokens):
    """SGD: Δp = −η·m·g. Adam's first step (bias-corrected m̂ = g, v̂ = g²): Δp = −η·m·g/(|g| + eps)."""
    lr, eps = 1e-2, 1e-8
    model = _model("mup", "mup", d=64, base_d=16).double()  # fp64: Δp is exact to ~1e-12 of p
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = make_optimizer(model, optimizer, lr, **({"eps": eps} if optimizer == "adam" else {}))
    opt.zero_grad()
    _loss(model, tokens).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    opt.step()
    mults = lr_multipliers(model, optimizer)
    assert len({round(m, 12) for m in mults.values()}) >= 3  # the test compares genuinely different rates
    for n, p in model.named_parameters():
        g = grads[n]
        expected = -lr * mults[n] * (g if optimizer == "sgd" else g / (g.abs() + eps))
        torch.testing.assert_close(p.detach() - before[n], expected, rtol=1e-6, atol=1e-12, msg=n)


def _roundtrip_state_dict(model: MHCLM) -> MHCLM:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    return MHCLM.from_state_dict(torch.load(buf, weights_only=True))


@pytest.mark.parametrize(
    "roundtrip",
    [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m)), _roundtrip_state_dict],
    ids=["deepcopy", "pickle", "state_dict"],
)
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_multipliers_survive_round_trips(roundtrip, optimizer, tokens):
    model = _model("mup", "mup", d=64, base_d=16)
    copied = roundtrip(model)
    assert copied is not model
    assert lr_multipliers(copied, optimizer) == lr_multipliers(model, optimizer)
    assert [(g["kind"], g["lr"]) for g in param_groups(copied, optimizer, 0.1)] == [
        (g["kind"], g["lr"]) for g in param_groups(model, optimizer, 0.1)
    ]
    assert copied.param == model.param and copied.config == model.config
    torch.testing.assert_close(copied(tokens), model(tokens), rtol=0, atol=0)


def test_optimizer_state_dict_keeps_group_rates(tokens):
    model = _model("mup", "mup", d=64, base_d=16)
    opt = make_optimizer(model, "adam", 1e-3)
    _loss(model, tokens).backward()
    opt.step()
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    fresh = make_optimizer(copy.deepcopy(model), "adam", 1.0)  # wrong rates, overwritten by the load
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert [(g["kind"], g["lr"], g["lr_mult"]) for g in fresh.param_groups] == [
        (g["kind"], g["lr"], g["lr_mult"]) for g in opt.param_groups
    ]


def test_loading_weights_into_a_differently_parameterized_model_fails():
    sd = _model("mup", "mup", d=64, base_d=16).state_dict()
    other = _model("sp", "mup", d=64, base_d=16)
    with pytest.raises(ModelConfigError, match="different model"):
        other.load_state_dict(sd)
    with pytest.raises(ModelConfigError, match="_extra_state"):
        MHCLM.from_state_dict({k: v for k, v in sd.items() if k != "_extra_state"})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: bf16 autocast branches, fp32 mHC")
def test_cuda_bf16_branches_keep_the_mhc_math_in_fp32(tokens):
    model = _model(hc="hf-v4").cuda()
    seen = {}
    hc = model.blocks[0].attn.hc
    hc.comb_logits.register_forward_hook(lambda m, i, o: seen.setdefault("z", o))
    model.blocks[0].attn.branch.register_forward_hook(lambda m, i, o: seen.setdefault("branch", o))
    model.blocks[0].attn.register_forward_hook(lambda m, i, o: seen.setdefault("stream", o))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(tokens.cuda())
    assert seen["z"].dtype == torch.float32 and seen["stream"].dtype == torch.float32
    assert seen["branch"].dtype == torch.bfloat16
    ref = _model(hc="hf-v4")(tokens)
    torch.testing.assert_close(logits.float().cpu(), ref, rtol=0.1, atol=0.1)


# ── q/k norm ────────────────────────────────────────────────────────────────────────────────────
def test_qk_norm_attention_is_the_naive_formula_and_bounds_the_logits():
    """``softmax(q̂·k̂ᵀ·scale + mask)·v`` with ``q̂ = g_q ⊙ q / rms(q)`` per head (fp64, against one written out),
    and however large the input, ``|q̂·k̂ᵀ·scale| ≤ d_head · scale · max|g_q| · max|g_k|``, which the same layer
    without the norms exceeds many times over."""
    from mhc_mup.mhc.ops import NORM_EPS
    from mhc_mup.training.model import Attention

    B, T, d, H, scale = 2, 6, 32, 4, 0.3
    torch.manual_seed(0)
    attn = Attention(d, H, scale, qk_norm=True).double()
    with torch.no_grad():
        attn.q_norm.weight.copy_(torch.linspace(0.5, 2.0, d // H))
        attn.k_norm.weight.copy_(torch.linspace(2.0, 0.5, d // H))
    x = 50 * torch.randn(B, T, d, dtype=torch.float64)

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.view(B, T, H, d // H).transpose(1, 2)

    def rms_norm(t: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        return t / (t.square().mean(-1, keepdim=True) + NORM_EPS).sqrt() * gain

    q = rms_norm(heads(x @ attn.q.weight.T), attn.q_norm.weight)
    k = rms_norm(heads(x @ attn.k.weight.T), attn.k_norm.weight)
    s = (q @ k.transpose(-1, -2) * scale).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), -math.inf)
    y = (s.softmax(-1) @ heads(x @ attn.v.weight.T)).transpose(1, 2).reshape(B, T, d) @ attn.o.weight.T
    torch.testing.assert_close(attn(x), y)
    torch.testing.assert_close(attn.queries_keys(x), (q, k))

    bound = (d // H) * scale * 2.0 * 2.0
    assert (q @ k.transpose(-1, -2) * scale).abs().max() <= bound
    plain = Attention(d, H, scale).double()
    plain.load_state_dict({n: p for n, p in attn.state_dict().items() if "_norm" not in n})
    qp, kp = plain.queries_keys(x)
    assert (qp @ kp.transpose(-1, -2) * scale).abs().max() > 10 * bound


def test_qk_norm_adds_two_gains_per_attention_layer_and_changes_no_other_init():
    """The q/k norms' gains start at 1, are "gain"s to the width rules (their group's learning rate), and building
    them draws nothing: every other parameter is the same tensor as in the model without them (same seed)."""
    plain, normed = _model(), _model(qk_norm=True)
    extra = {n: p for n, p in normed.named_parameters() if n not in dict(plain.named_parameters())}
    assert sorted(extra) == [f"blocks.{i}.attn.branch.{qk}_norm.weight" for i in (0, 1) for qk in ("k", "q")]
    assert all(p.shape == (32 // 4,) and torch.all(p == 1) for p in extra.values())
    assert {parameter_kind(n) for n in extra} == {"gain"}
    gains = next(g for g in param_groups(normed, "adam", 0.5) if g["kind"] == "gain")
    assert {id(p) for p in extra.values()} <= {id(p) for p in gains["params"]}
    for name, p in plain.named_parameters():
        assert torch.equal(p, dict(normed.named_parameters())[name]), name
    with pytest.raises(ModelConfigError, match="qk_norm must be True or False, got 'yes'"):
        ModelConfig(qk_norm="yes")  # type: ignore[arg-type]
