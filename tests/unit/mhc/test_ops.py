"""V4's mHC ops: closed-form facts and an independent loop implementation (the seed's script as an oracle:
tests/integration/test_reference.py)."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mhc_mup.mhc import ops
from mhc_mup.mhc.presets import PRESETS, MHCConfig, preset
from tests.helpers import random_params


def naive_sinkhorn(Z: torch.Tensor, K: int, eps: float) -> torch.Tensor:
    """V4's procedure written entry by entry from the spec, for one n×n matrix."""
    n = Z.shape[0]
    c = [[0.0] * n for _ in range(n)]
    for i in range(n):
        m = max(Z[i].tolist())
        e = [float(torch.exp(Z[i, j] - m)) for j in range(n)]
        for j in range(n):
            c[i][j] = e[j] / sum(e) + eps

    def cols():
        for j in range(n):
            s = sum(c[i][j] for i in range(n)) + eps
            for i in range(n):
                c[i][j] /= s

    def rows():
        for i in range(n):
            s = sum(c[i]) + eps
            c[i] = [v / s for v in c[i]]

    cols()
    for _ in range(K - 1):
        rows()
        cols()
    return torch.tensor(c, dtype=torch.float64)


@pytest.mark.parametrize("K", [1, 2, 7, 20])
def test_sinkhorn_matches_entrywise_spec(K, gen):
    Z = torch.randn(5, 5, generator=gen, dtype=torch.float64) * 2
    torch.testing.assert_close(ops.sinkhorn_knopp(Z, K, 1e-6), naive_sinkhorn(Z, K, 1e-6), rtol=1e-13, atol=1e-15)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 7),
    K=st.integers(1, 30),
    batch=st.lists(st.integers(1, 3), max_size=2),
    spread=st.floats(0.1, 4.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_sinkhorn_last_step_normalises_columns(n, K, batch, spread, seed):
    """Every entry is positive and every column sums to S/(S + eps) < 1 for its pre-division sum S > 0."""
    g = torch.Generator().manual_seed(seed)
    eps = 1e-6
    Z = torch.randn(*batch, n, n, generator=g, dtype=torch.float64) * spread
    C = ops.sinkhorn_knopp(Z, K, eps)
    assert C.shape == Z.shape
    assert (C > 0).all()
    col = C.sum(-2)
    assert (col < 1).all()
    S = eps * col / (1 - col)  # invert col = S/(S + eps)
    assert (S > 0).all() and (n * (1 + eps) + 1e-9 >= S).all()  # n entries, each <= 1 + eps


def test_sinkhorn_doubly_stochastic_at_v4_K(gen):
    # The seed's init gives logits of size ~0.1: Sinkhorn has converged by K = 20, ε_K ≈ hc_eps.
    Z = torch.randn(1000, 4, 4, generator=gen) * 0.3
    C = ops.sinkhorn_knopp(Z, 20, 1e-6)
    assert (C.sum(-1) - 1).abs().max() < 3e-6
    assert (C.sum(-2) - 1).abs().max() < 3e-6
    # N(0, 1) logits converge more slowly in the tail: the median is at hc_eps, a few per mille are not.
    C = ops.sinkhorn_knopp(Z / 0.3, 20, 1e-6)
    rows = (C.sum(-1) - 1).abs().amax(-1)
    assert rows.median() < 2e-6 and rows.max() < 1e-3


def test_sinkhorn_invariant_to_row_shifts(gen):
    Z = torch.randn(64, 4, 4, generator=gen, dtype=torch.float64)
    shift = torch.randn(64, 4, 1, generator=gen, dtype=torch.float64) * 10
    for K in (1, 3, 20):
        torch.testing.assert_close(ops.sinkhorn_knopp(Z + shift, K), ops.sinkhorn_knopp(Z, K), rtol=0, atol=1e-13)


def test_sinkhorn_rejects_K0():
    with pytest.raises(ValueError, match="K must be >= 1"):
        ops.sinkhorn_knopp(torch.zeros(4, 4), 0)


def test_hc_post_permutation_comb_is_input_first(gen):
    """comb[i, o] sends input stream i to output stream o: a permutation comb moves stream i to σ(i)."""
    n_s, d = 4, 3
    residual = torch.randn(2, n_s, d, generator=gen)
    branch = torch.randn(2, d, generator=gen)
    sigma = [2, 0, 3, 1]  # i → σ(i)
    comb = torch.zeros(n_s, n_s)
    for i, o in enumerate(sigma):
        comb[i, o] = 1.0
    out = ops.hc_post(branch, residual, torch.zeros(2, n_s), comb.expand(2, n_s, n_s))
    for i, o in enumerate(sigma):
        torch.testing.assert_close(out[:, o], residual[:, i])
    # and the post term writes post[o]·f(y) into every output stream
    post = torch.arange(1.0, n_s + 1).expand(2, n_s)
    out = ops.hc_post(branch, residual, post, torch.zeros(2, n_s, n_s))
    for o in range(n_s):
        torch.testing.assert_close(out[:, o], post[:, o, None] * branch)


@settings(max_examples=25, deadline=None)
@given(
    n_s=st.integers(2, 6),
    d=st.integers(1, 9),
    batch=st.lists(st.integers(1, 3), max_size=3),
    seed=st.integers(0, 2**31 - 1),
)
def test_hc_pre_and_post_match_a_loop_over_streams(n_s, d, batch, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*batch, n_s, d, generator=g, dtype=torch.float64)
    fn, scale, base = random_params(n_s, d, g)
    y, post, comb = ops.hc_pre(x, fn, scale, base, K=5)
    pre, post2, comb2 = ops.hc_weights(x, fn, scale, base, K=5)
    torch.testing.assert_close(post, post2)
    torch.testing.assert_close(comb, comb2)
    for idx in itertools.product(*(range(b) for b in batch)):
        xs = x[idx]
        flat = xs.reshape(-1)
        r = 1.0 / torch.sqrt((flat**2).mean() + 1e-6)
        mixes = torch.stack([(fn[k] * flat).sum() * r for k in range(fn.shape[0])])
        pre_ref = torch.sigmoid(mixes[:n_s] * scale[0] + base[:n_s]) + 1e-6
        post_ref = 2 * torch.sigmoid(mixes[n_s : 2 * n_s] * scale[1] + base[n_s : 2 * n_s])
        Z = (mixes[2 * n_s :] * scale[2] + base[2 * n_s :]).reshape(n_s, n_s)
        comb_ref = naive_sinkhorn(Z, 5, 1e-6)
        torch.testing.assert_close(pre[idx], pre_ref)
        torch.testing.assert_close(post[idx], post_ref)
        torch.testing.assert_close(comb[idx], comb_ref)
        torch.testing.assert_close(y[idx], sum(pre_ref[i] * xs[i] for i in range(n_s)))
        f = torch.randn(d, dtype=torch.float64, generator=g)
        out = ops.hc_post(f, xs, post_ref, comb_ref)
        for o in range(n_s):
            expect = post_ref[o] * f + sum(comb_ref[i, o] * xs[i] for i in range(n_s))
            torch.testing.assert_close(out[o], expect)


def test_hc_head_is_a_pre_only_collapse(gen):
    n_s, d = 4, 8
    x = torch.randn(3, 5, n_s, d, generator=gen, dtype=torch.float64)
    head_fn = torch.randn(n_s, n_s * d, generator=gen, dtype=torch.float64) * 0.1
    head_scale = torch.tensor([0.7], dtype=torch.float64)
    head_base = torch.randn(n_s, generator=gen, dtype=torch.float64)
    out = ops.hc_head(x, head_fn, head_scale, head_base)
    mixes = ops.hc_mixes(x, head_fn)
    pre = torch.sigmoid(mixes * 0.7 + head_base) + 1e-6
    torch.testing.assert_close(out, (pre[..., None] * x).sum(-2))
    assert out.shape == (3, 5, d)


def test_dtypes_fp32_default_fp64_kept_bf16_upcast(gen):
    n_s, d = 4, 16
    fn, scale, base = random_params(n_s, d, gen, dtype=torch.float32)
    x32 = torch.randn(2, n_s, d, generator=gen)
    y, post, comb = ops.hc_pre(x32, fn, scale, base)
    assert y.dtype == post.dtype == comb.dtype == torch.float32
    _, _, comb64 = ops.hc_pre(x32.double(), fn.double(), scale.double(), base.double())
    assert comb64.dtype == torch.float64
    torch.testing.assert_close(comb, comb64.float(), rtol=1e-5, atol=1e-6)
    # bf16 streams, as V4 stores them: the mHC math still runs in fp32, the branch input comes back in bf16
    yb, postb, combb = ops.hc_pre(x32.bfloat16(), fn, scale, base)
    assert postb.dtype == combb.dtype == torch.float32 and yb.dtype == torch.bfloat16
    out = ops.hc_post(yb, x32.bfloat16(), postb, combb)
    assert out.dtype == torch.bfloat16


def test_split_mixes_rejects_wrong_width():
    with pytest.raises(ValueError, match="expected"):
        ops.split_mixes(torch.zeros(10), torch.ones(3), torch.zeros(10), n_s=4)


def test_presets():
    assert preset("v4-pro") == MHCConfig(n_s=4, d=7168, K=20, n_layers=61)
    assert preset("v4-flash").d == 4096 and preset("v4-flash").n_layers == 43
    assert preset("seed").d == 256
    for cfg in PRESETS.values():
        assert cfg.hc_eps == cfg.norm_eps == 1e-6 and cfg.mix_dim == 24 and cfg.hc_dim == 4 * cfg.d
    with pytest.raises(KeyError, match="unknown preset 'v5'"):
        preset("v5")
    for bad in ({"n_s": 1}, {"K": 0}, {"d": 0}, {"d": 2.5}):
        with pytest.raises(ValueError):
            MHCConfig(**bad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available on this machine (CPU CI)")
def test_cuda_matches_cpu(gen):
    n_s, d = 4, 64
    x = torch.randn(8, n_s, d, generator=gen, dtype=torch.float64)
    fn, scale, base = random_params(n_s, d, gen)
    cpu = ops.hc_pre(x, fn, scale, base)
    gpu = ops.hc_pre(x.cuda(), fn.cuda(), scale.cuda(), base.cuda())
    for a, b in zip(cpu, gpu, strict=True):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-12, atol=1e-14)
