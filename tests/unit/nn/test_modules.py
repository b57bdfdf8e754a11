"""The drop-in modules compute V4's reference ops exactly around any branch, initialise by a preset, and are what
MHCLM is built from (same parameter names, same numbers)."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

from mhc_mup.errors import ModelConfigError
from mhc_mup.kernels import fused
from mhc_mup.mhc.ops import hc_head, hc_post, hc_pre
from mhc_mup.mhc.parameterizations import PARAMETERIZATIONS
from mhc_mup.nn import HeadCollapse, HyperConnection, MHCSublayer, expand_streams
from mhc_mup.training.model import MHCLM, ModelConfig


class Branch(nn.Module):
    """A branch that is not ours: a SiLU MLP with biases."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.up, self.down = nn.Linear(d, 3 * d), nn.Linear(3 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.nn.functional.silu(self.up(x)))


def _randomise(module: nn.Module, seed: int) -> None:
    """Non-trivial values everywhere (base and gains away from their init), so that a wrong op shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize("n_s", [2, 4])
def test_sublayer_is_hc_pre_then_branch_then_hc_post(n_s):
    torch.manual_seed(0)
    sub = MHCSublayer(Branch(16), d=16, n_s=n_s, K=7, init="hf-v4")
    _randomise(sub, 1)
    x = torch.randn(3, 5, n_s, 16, generator=torch.Generator().manual_seed(2))
    y, post, comb = hc_pre(x, sub.hc.fn, sub.hc.scale, sub.hc.base, K=7)
    expected = hc_post(sub.branch(sub.norm(y)), x, post, comb)
    torch.testing.assert_close(sub(x), expected, rtol=0, atol=0)


def test_sublayer_without_norm_and_plain_control():
    torch.manual_seed(0)
    bare = MHCSublayer(Branch(8), d=8, n_s=4, norm=False)
    x = torch.randn(2, 4, 8)
    y, post, comb = hc_pre(x, bare.hc.fn, bare.hc.scale, bare.hc.base)
    torch.testing.assert_close(bare(x), hc_post(bare.branch(y), x, post, comb), rtol=0, atol=0)
    plain = MHCSublayer(Branch(8), d=8, n_s=None)
    assert plain.hc is None and not any("hc" in n for n, _ in plain.named_parameters())
    h = torch.randn(2, 8)
    torch.testing.assert_close(plain(h), h + plain.branch(plain.norm(h)), rtol=0, atol=0)


def test_head_collapse_is_hc_head():
    head = HeadCollapse(4, 8, init="hf-v4")
    _randomise(head, 3)
    x = torch.randn(2, 3, 4, 8)
    torch.testing.assert_close(head(x), hc_head(x, head.fn, head.scale, head.base), rtol=0, atol=0)


@pytest.mark.parametrize("preset", ["mup", "baseline", "hf-v4"])
def test_a_new_module_is_initialised_by_its_preset(preset):
    n_s, d = 4, 64
    hc = HyperConnection(n_s, d, init=preset, generator=torch.Generator().manual_seed(0))
    values = PARAMETERIZATIONS[preset].init(n_s, d)
    gates = zip(("pre", "post", "comb"), (slice(0, 4), slice(4, 8), slice(8, 24)), values.sigma_w, strict=True)
    for gate, rows, sigma in gates:
        std = hc.fn[rows].std().item()
        assert abs(std / sigma - 1) < 0.05, (gate, std, sigma)  # 4·256 to 16·256 draws: ±3% at 1σ at most
    assert hc.scale.tolist() == pytest.approx(list(values.scale)) and hc.base.abs().max() == 0
    head = HeadCollapse(n_s, d, init=preset, generator=torch.Generator().manual_seed(0))
    assert head.scale.item() == pytest.approx(values.scale[0])
    assert abs(head.fn.std().item() / values.sigma_w[0] - 1) < 0.1


def test_the_init_draws_from_the_given_generator_not_the_global_one():
    state = torch.get_rng_state()
    a = HyperConnection(4, 8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), state)
    b = HyperConnection(4, 8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.fn, b.fn)


def test_expand_streams_copies_contiguously():
    x = torch.randn(2, 3, 8)
    s = expand_streams(x, 4)
    assert s.shape == (2, 3, 4, 8) and s.is_contiguous() and all(torch.equal(s[..., i, :], x) for i in range(4))


def test_mhclm_is_built_from_the_drop_in_modules_with_its_old_names():
    model = MHCLM(ModelConfig(d=16, depth=1, heads=2, n_s=4, K=3), seed=0)
    assert isinstance(model.blocks[0].attn, MHCSublayer) and isinstance(model.blocks[0].mlp, MHCSublayer)
    assert isinstance(model.head, HeadCollapse)
    assert list(model.state_dict()) == [
        "_extra_state",
        "embed.weight",
        *(f"blocks.0.attn.{k}" for k in ("hc.fn", "hc.scale", "hc.base", "norm.weight")),
        *(f"blocks.0.attn.branch.{k}.weight" for k in "qkvo"),
        *(f"blocks.0.mlp.{k}" for k in ("hc.fn", "hc.scale", "hc.base", "norm.weight")),
        "blocks.0.mlp.branch.up.weight",
        "blocks.0.mlp.branch.down.weight",
        "head.fn",
        "head.scale",
        "head.base",
        "norm_f.weight",
        "readout.weight",
    ]


def test_building_an_mhclm_leaves_the_global_rng_as_before():
    """MHCLM re-initialises everything from its seed: its modules' own init must not use the global RNG
    (torch's layers do, as they always did; the sequence after building a model is the same as before)."""
    torch.manual_seed(0)
    nn.Embedding(256, 16), [nn.Linear(16, 16, bias=False) for _ in range(4)]
    nn.Linear(16, 64, bias=False), nn.Linear(64, 16, bias=False), nn.Linear(16, 256, bias=False)
    expected = torch.randn(3)
    torch.manual_seed(0)
    MHCLM(ModelConfig(d=16, depth=1, heads=2), seed=0)
    torch.testing.assert_close(torch.randn(3), expected, rtol=0, atol=0)


def test_a_sublayer_survives_deepcopy_and_pickling():
    sub = MHCSublayer(Branch(8), d=8, n_s=4, kernels="reference")
    x = torch.randn(2, 4, 8)
    for other in (copy.deepcopy(sub), pickle.loads(pickle.dumps(sub))):
        assert other.hc.kernels == "reference"
        torch.testing.assert_close(other(x), sub(x), rtol=0, atol=0)


def test_bad_input_is_one_line_naming_the_value():
    with pytest.raises(ModelConfigError, match=r"kernels must be one of auto, reference, triton, got 'cuda'"):
        MHCSublayer(nn.Identity(), d=8, kernels="cuda")
    with pytest.raises(ModelConfigError, match="n_s must be an integer >= 2, got 1"):
        MHCSublayer(nn.Identity(), d=8, n_s=1)
    with pytest.raises(ModelConfigError, match="d must be an integer >= 1, got 0"):
        HeadCollapse(4, 0)
    with pytest.raises(ModelConfigError, match="K must be an integer >= 1, got 0"):
        HyperConnection(4, 8, K=0)


def _run(sub: MHCSublayer, x: torch.Tensor, weight: torch.Tensor) -> list[torch.Tensor]:
    """The output, and the gradients of ``Σ weight·output`` with respect to ``x`` and every parameter."""
    x = x.detach().to(next(sub.parameters()).dtype).clone().requires_grad_(True)
    out = sub(x)
    (out * weight.to(out.dtype)).sum().backward()
    return [out.detach(), x.grad, *(p.grad for p in sub.parameters())]


CPU_KERNELS = fused.triton_unavailable_reason(torch.device("cpu"))


@pytest.mark.skipif(CPU_KERNELS is not None or torch.cuda.is_available(), reason=str(CPU_KERNELS or "a GPU is here"))
def test_the_fused_path_around_any_branch_matches_the_reference_ops():
    """kernels='triton' (Triton's interpreter on CPU): output and every gradient of a sublayer around a branch
    that is not ours agree with fp64 autograd through the reference ops as closely as the fp32 reference does."""
    torch.manual_seed(0)
    ref = MHCSublayer(Branch(16), d=16, n_s=4, K=5, init="hf-v4", kernels="reference")
    _randomise(ref, 1)
    fast, exact = copy.deepcopy(ref), copy.deepcopy(ref).double()
    fast.hc.kernels = "triton"
    gen = torch.Generator().manual_seed(2)
    x, weight = torch.randn(2, 7, 4, 16, generator=gen), torch.randn(2, 7, 4, 16, generator=gen)
    assert fast.hc.fused_for(x) and not ref.hc.fused_for(x)
    for a, b, c in zip(_run(fast, x, weight), _run(ref, x, weight), _run(exact, x, weight), strict=True):
        err_fast, err_ref = ((t.double() - c).norm().item() for t in (a, b))
        assert err_fast <= max(1e-5 * c.norm().item(), 4 * err_ref), (err_fast, err_ref, c.norm().item())
