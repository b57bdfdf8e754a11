"""Adapters: the protocol, the autograd diagnostics against the closed form, and agreement with the real
transformers and hyper-connections modules (skipped, with a reason, when those packages are absent)."""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

from mhc_mup.diagnostics import measures as dg
from mhc_mup.interop.adapter_diagnostics import (
    autograd_gate_jacobian_norms,
    diagnose,
    gate_jacobian_norms,
    summarize,
    sweep_adapter,
)
from mhc_mup.interop.adapters import FunctionAdapter, MHCAdapter, MissingExtraError, V4Params, require
from mhc_mup.mhc.ops import collapse, hc_post, hc_weights
from tests.helpers import random_params


def v4_params(n_s: int, d: int, gen: torch.Generator, dtype=torch.float64, K: int = 20) -> V4Params:
    fn, scale, base = random_params(n_s, d, gen, dtype=dtype)
    return V4Params(fn, base, scale, K=K)


# ── protocol and the generic autograd path ─────────────────────────────────────────────────────
def test_built_in_adapters_satisfy_the_protocol(gen):
    p = v4_params(4, 8, gen)
    assert isinstance(p, MHCAdapter) and (p.n_s, p.d) == (4, 8)
    f = FunctionAdapter(p.weights, n_s=4, d=8)
    assert isinstance(f, MHCAdapter)


@pytest.mark.parametrize(("n_s", "d", "K"), [(2, 16, 1), (4, 8, 20), (4, 64, 5), (6, 12, 20)])
def test_autograd_jacobian_norms_equal_the_closed_form(gen, n_s, d, K):
    p = v4_params(n_s, d, gen, K=K)
    x = torch.randn(6, n_s, d, generator=gen, dtype=torch.float64)
    auto = autograd_gate_jacobian_norms(p, x)
    closed = p.gate_jacobian_norms(x)
    for a, c in zip(auto, closed, strict=True):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=0)


def test_autograd_path_is_used_for_a_plain_function_and_chunks_agree(gen):
    p = v4_params(4, 16, gen)
    f = FunctionAdapter(lambda s: hc_weights(s, p.fn, p.scale, p.base), n_s=4, d=16)
    x = torch.randn(7, 4, 16, generator=gen, dtype=torch.float64)
    whole = gate_jacobian_norms(f, x)  # no closed form on a FunctionAdapter: autograd
    chunked = gate_jacobian_norms(f, x, chunk=3)
    for a, b, c in zip(whole, chunked, p.gate_jacobian_norms(x), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
        torch.testing.assert_close(a, c, rtol=1e-10, atol=0)
    with pytest.raises(ValueError, match="no closed-form"):
        gate_jacobian_norms(f, x, method="closed_form")


def test_diagnose_matches_the_core_diagnostics(gen):
    p = v4_params(4, 32, gen)
    x = torch.randn(5, 4, 32, generator=gen, dtype=torch.float64)
    out = diagnose(p, x, method="autograd")
    pre, post, comb = p.weights(x)
    sens = dg.dynamic_sensitivity(x, p.fn, p.scale, p.base)
    torch.testing.assert_close(out["dynamic_sensitivity"]["dc_x"], sens.dc_x, rtol=1e-10, atol=0)
    torch.testing.assert_close(out["dynamic_sensitivity"]["dq_x"], sens.dq_x, rtol=1e-10, atol=0)
    torch.testing.assert_close(out["sinkhorn_error"]["eps_K"], dg.sinkhorn_error(comb))
    torch.testing.assert_close(out["spectral_norm"]["kappa"], dg.spectral_stats(comb).kappa)
    torch.testing.assert_close(out["gate_stats"]["post_linf"], dg.gate_stats(pre, post).post_linf)
    keys = summarize(out)
    assert set(keys) == {"sinkhorn_error", "spectral_norm", "dynamic_sensitivity", "gate_stats"}
    assert keys["dynamic_sensitivity"]["dc_x_mean"] == pytest.approx(float(sens.dc_x.mean()))


def test_diagnose_names_a_wrong_shape():
    bad = FunctionAdapter(lambda s: (s[..., 0], s[..., 0], s[..., :3, :3]), n_s=4, d=8)
    with pytest.raises(ValueError, match=r"comb of shape \(2, 3, 3\), expected \(2, 4, 4\)"):
        diagnose(bad, torch.randn(2, 4, 8))
    with pytest.raises(ValueError, match=r"states must be \(B, 4, 8\)"):
        diagnose(bad, torch.randn(2, 4, 9))


def test_sweep_of_v4_at_transformers_init_grows_like_width():
    """fn ~ N(0, 0.02²), scale 1 (transformers' init): ‖DC‖·‖x‖ ∝ d, the seed's finding at another scale."""

    def build(d: int) -> V4Params:
        g = torch.Generator().manual_seed(d)
        return V4Params(torch.randn(24, 4 * d, generator=g) * 0.02, torch.zeros(24), torch.ones(3))

    result = sweep_adapter(build, [32, 64, 128, 256], samples=8, n_boot=200)
    fit = result.fits[("dynamic_sensitivity", "dc_x_mean")]
    assert 0.8 < fit.exponent < 1.2, fit
    assert result.summary(64)["sinkhorn_error"]["eps_K_max"] < 1e-5


def test_missing_extra_names_the_install_command(monkeypatch):
    import importlib

    def absent(name, *args, **kwargs):
        raise ImportError(f"No module named '{name}'")

    monkeypatch.setattr(importlib, "import_module", absent)
    with pytest.raises(MissingExtraError, match=r"'hyper-connections' package: pip install mhc-mup\[adapters\]"):
        require("hyper_connections", "the hyper-connections adapter")


# ── transformers ───────────────────────────────────────────────────────────────────────────────
class SigmoidCapture(TorchFunctionMode):
    """Records the output of every sigmoid the wrapped code computes, in call order."""

    def __init__(self) -> None:
        super().__init__()
        self.outputs: list[torch.Tensor] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in (torch.sigmoid, torch.Tensor.sigmoid):
            self.outputs.append(out)
        return out


def _randomise_hc(module: torch.nn.Module, gen: torch.Generator, fn_std: float) -> None:
    """Non-trivial base and scale (transformers inits base 0, scale 1) so every term of the math shows."""
    with torch.no_grad():
        module.fn.copy_(torch.randn(module.fn.shape, generator=gen) * fn_std)
        module.base.copy_(torch.randn(module.base.shape, generator=gen))
        module.scale.copy_(torch.rand(3, generator=gen) + 0.5)


@pytest.fixture(scope="module")
def tf():
    pytest.importorskip("transformers", reason="transformers is an optional extra: pip install mhc-mup[adapters]")
    from transformers.models.deepseek_v4 import modeling_deepseek_v4

    return modeling_deepseek_v4


CASES = [  # n_s, d, K, batch shape (B, S)
    (4, 32, 20, (2, 3)),
    (4, 128, 20, (1, 7)),
    (2, 48, 5, (3, 2)),
    (6, 16, 1, (2, 2)),
    (4, 64, 50, (4, 1)),
]


@pytest.mark.parametrize(("n_s", "d", "K", "batch"), CASES)
def test_our_ops_agree_with_transformers_hyper_connection(tf, n_s, d, K, batch):
    from mhc_mup.interop.adapters import TransformersV4Adapter

    gen = torch.Generator().manual_seed(n_s * 1000 + d + K)
    adapter = TransformersV4Adapter.build(n_s, d, K)
    _randomise_hc(adapter.module, gen, fn_std=1.0 / (n_s * d) ** 0.5)
    x = torch.randn(*batch, n_s, d, generator=gen)
    with torch.no_grad():
        with SigmoidCapture() as spy:
            post_tf, comb_tf, collapsed_tf = adapter.module_forward(x)
        pre_tf = spy.outputs[0] + adapter.module.hc_eps  # transformers: pre = σ(·) + hc_eps, its first sigmoid
        pre, post, comb = adapter.weights(x)
    tol = {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(pre, pre_tf, **tol)
    torch.testing.assert_close(post, post_tf, **tol)
    torch.testing.assert_close(comb, comb_tf, **tol)
    torch.testing.assert_close(collapse(x, pre), collapsed_tf, **tol)


class _Branch(torch.nn.Module):
    """A stand-in for attention / MoE: a fixed linear map, returned the way the decoder layer expects."""

    def __init__(self, d: int, gen: torch.Generator, returns_tuple: bool) -> None:
        super().__init__()
        self.weight = torch.randn(d, d, generator=gen) / d**0.5
        self.returns_tuple = returns_tuple

    def forward(self, y: torch.Tensor, **kwargs):
        out = y @ self.weight.T
        return (out, None) if self.returns_tuple else out


@pytest.mark.parametrize(("n_s", "d", "K", "batch"), CASES[:3])
def test_full_sublayer_output_agrees_with_transformers_decoder_layer(tf, n_s, d, K, batch):
    """Both hc sites of a real ``DeepseekV4DecoderLayer`` (its own forward, branches replaced by fixed linear
    maps) against two of our sublayers: collapse → branch → ``hc_post``."""
    from mhc_mup.interop.adapters import V4Params, tiny_deepseek_v4_config

    gen = torch.Generator().manual_seed(7 + d)
    layer = tf.DeepseekV4DecoderLayer(tiny_deepseek_v4_config(n_s, d, K), layer_idx=0)
    for hc in (layer.attn_hc, layer.ffn_hc):
        _randomise_hc(hc, gen, fn_std=1.0 / (n_s * d) ** 0.5)
    layer.self_attn = _Branch(d, gen, returns_tuple=True)
    layer.mlp = _Branch(d, gen, returns_tuple=False)
    x = torch.randn(*batch, n_s, d, generator=gen)
    with torch.no_grad():
        out_tf = layer(x)
        attn = V4Params.from_transformers(layer.attn_hc)
        ffn = V4Params.from_transformers(layer.ffn_hc)
        h = attn.sublayer(x, lambda y: layer.self_attn(layer.input_layernorm(y))[0])
        ours = ffn.sublayer(h, lambda y: layer.mlp(layer.post_attention_layernorm(y)))
    torch.testing.assert_close(ours, out_tf, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("n_s", "d"), [(4, 32), (2, 64), (6, 8)])
def test_our_head_agrees_with_transformers_hyper_head(tf, n_s, d):
    from mhc_mup.interop.adapters import V4HeadParams, tiny_deepseek_v4_config

    gen = torch.Generator().manual_seed(d)
    head = tf.DeepseekV4HyperHead(tiny_deepseek_v4_config(n_s, d))
    with torch.no_grad():
        head.hc_fn.copy_(torch.randn(head.hc_fn.shape, generator=gen) / (n_s * d) ** 0.5)
        head.hc_base.copy_(torch.randn(n_s, generator=gen))
        head.hc_scale.fill_(0.7)
        x = torch.randn(3, 5, n_s, d, generator=gen)
        with SigmoidCapture() as spy:
            collapsed_tf = head(x)
        ours = V4HeadParams.from_transformers(head)
        torch.testing.assert_close(ours.pre(x), spy.outputs[0] + head.eps, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ours.collapse(x), collapsed_tf, rtol=1e-5, atol=1e-6)


def test_transformers_init_is_what_the_adapter_builds(tf):
    from mhc_mup.interop.adapters import TransformersV4Adapter

    a = TransformersV4Adapter.build(4, 256, 20, seed=3)
    assert float(a.module.fn.detach().std()) == pytest.approx(0.02, rel=0.05)
    assert torch.equal(a.module.base, torch.zeros(24)) and torch.equal(a.module.scale, torch.ones(3))
    b = TransformersV4Adapter.build(4, 256, 20, seed=3)
    assert torch.equal(a.module.fn, b.module.fn)  # seeded


# ── hyper-connections ──────────────────────────────────────────────────────────────────────────
@pytest.fixture(scope="module")
def hc_pkg():
    return pytest.importorskip(
        "hyper_connections", reason="hyper-connections is an optional extra: pip install mhc-mup[adapters]"
    )


def _randomise_mhc(module: torch.nn.Module, gen: torch.Generator) -> None:
    """Move every parameter off its init so that the comparison sees each term."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.3)


@pytest.mark.parametrize(
    ("n_s", "d", "K", "options"),
    [
        (4, 32, 20, {}),
        (2, 64, 5, {}),
        (6, 16, 20, {"log_domain_sinkhorn": True}),
        (4, 24, 10, {"num_dynamic_alpha_proposals": 3}),
    ],
)
def test_hyper_connections_adapter_agrees_with_the_module(hc_pkg, n_s, d, K, options):
    from mhc_mup.interop.adapters import HyperConnectionsAdapter

    gen = torch.Generator().manual_seed(n_s + d + K)
    module = hc_pkg.ManifoldConstrainedHyperConnections(n_s, dim=d, sinkhorn_iters=K, layer_index=1, **options)
    _randomise_mhc(module, gen)
    combs: list[torch.Tensor] = []
    constraint = module.residual_mix_constraint_fn
    module.residual_mix_constraint_fn = lambda logits: combs.append(constraint(logits)) or combs[-1]
    adapter = HyperConnectionsAdapter(module)
    B = 5
    x = torch.randn(B, n_s, d, generator=gen)
    branch = _Branch(d, gen, returns_tuple=False)
    with torch.no_grad():
        branch_input, mixed, extra = module.width_connection(x.reshape(B * n_s, d))
        pre, post, comb = adapter.weights(x)
        _, out = adapter.module_forward(x, branch)
    comb_pkg = combs[0].mean(dim=0).reshape(B, n_s, n_s)  # (proposals, B, fracs=1, n_s, n_s) → (B, n_s, n_s)
    torch.testing.assert_close(comb, comb_pkg, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(post, extra["beta"].reshape(B, n_s), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(collapse(x, pre), branch_input, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(comb.transpose(-1, -2) @ x, mixed.reshape(B, n_s, d), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(hc_post(branch(branch_input), x, post, comb), out, rtol=1e-5, atol=1e-6)


def test_hyper_connections_at_init_ignores_the_state(hc_pkg):
    """The package zero-initialises its dynamic weights: at init the gates are constant, so diagnostic 4 is
    exactly 0; its Sinkhorn ends on a row normalisation, so rows (not columns) sum to 1 exactly."""
    from mhc_mup.interop.adapters import HyperConnectionsAdapter

    adapter = HyperConnectionsAdapter.build(4, 32, 20)
    x = torch.randn(6, 4, 32)
    out = diagnose(adapter, x)
    for key in ("dc_x", "dp_x", "dq_x"):
        assert torch.all(out["dynamic_sensitivity"][key] == 0)
    moved = diagnose(HyperConnectionsAdapter.build(4, 32, 20, dynamic_std=0.1), x)
    assert torch.all(moved["dynamic_sensitivity"]["dc_x"] > 0)
    _, _, comb = HyperConnectionsAdapter.build(4, 32, 20, dynamic_std=0.5).weights(x)
    torch.testing.assert_close(comb.sum(-1), torch.ones(6, 4), rtol=0, atol=1e-6)


def test_hyper_connections_adapter_rejects_unsupported_options(hc_pkg):
    from mhc_mup.interop.adapters import HyperConnectionsAdapter

    module = hc_pkg.ManifoldConstrainedHyperConnections(4, dim=32, num_fracs=2)
    with pytest.raises(ValueError, match="num_fracs"):
        HyperConnectionsAdapter(module)
