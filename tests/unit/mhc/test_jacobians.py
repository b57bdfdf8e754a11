"""Batched closed-form Jacobians against naive per-entry autograd (fp64), gradcheck and finite differences."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd.functional import jacobian

from mhc_mup.mhc import jacobians as jac
from mhc_mup.mhc import ops
from tests.helpers import per_entry_autograd_jacobian, random_params


@settings(max_examples=20, deadline=None)
@given(n_s=st.integers(2, 5), d=st.integers(1, 12), seed=st.integers(0, 2**31 - 1))
def test_mixes_jacobian_equals_per_entry_autograd(n_s, d, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, n_s, d, generator=g, dtype=torch.float64)
    fn, _, _ = random_params(n_s, d, g)
    J = jac.mixes_jacobian(x, fn)
    for b in range(3):
        ref = per_entry_autograd_jacobian(lambda v: ops.hc_mixes(v, fn), x[b])
        torch.testing.assert_close(J[b], ref, rtol=1e-10, atol=1e-12)
        gram = jac.mixes_jacobian_gram(x[b], fn)
        torch.testing.assert_close(gram, ref @ ref.T, rtol=1e-10, atol=1e-12)


def test_mixes_jacobian_batched_generators_and_finite_differences(gen):
    n_s, d = 3, 5
    x = torch.randn(4, n_s, d, generator=gen, dtype=torch.float64)
    fn, _, _ = random_params(n_s, d, gen, batch=(4,))
    J = jac.mixes_jacobian(x, fn)
    h = 1e-6
    for b in range(4):
        cols = []
        for k in range(n_s * d):
            e = torch.zeros(n_s * d, dtype=torch.float64)
            e[k] = h
            e = e.reshape(n_s, d)
            cols.append((ops.hc_mixes(x[b] + e, fn[b]) - ops.hc_mixes(x[b] - e, fn[b])) / (2 * h))
        torch.testing.assert_close(J[b], torch.stack(cols, dim=-1), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("K", [1, 2, 5, 20, 50])
@pytest.mark.parametrize("n", [2, 4, 6])
def test_sinkhorn_jacobian_equals_per_entry_autograd(K, n, gen):
    Z = torch.randn(5, n, n, generator=gen, dtype=torch.float64) * 1.5
    J = jac.sinkhorn_jacobian(Z, K)
    assert J.shape == (5, n * n, n * n)
    for b in range(5):
        ref = per_entry_autograd_jacobian(lambda z: ops.sinkhorn_knopp(z, K), Z[b])
        torch.testing.assert_close(J[b], ref, rtol=1e-10, atol=1e-13)


def test_sinkhorn_jvp_equals_autograd_jvp(gen):
    Z = torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64)
    dZ = torch.randn(2, 3, 7, 4, 4, generator=gen, dtype=torch.float64)
    C, dC = jac.sinkhorn_jvp(Z, dZ, 20)
    torch.testing.assert_close(C, ops.sinkhorn_knopp(Z, 20))
    for t in range(7):
        _, ref = torch.func.jvp(lambda z: ops.sinkhorn_knopp(z, 20), (Z,), (dZ[..., t, :, :],))
        torch.testing.assert_close(dC[..., t, :, :], ref, rtol=1e-10, atol=1e-13)


def test_gradcheck_of_the_ops(gen):
    """Autograd through our ops agrees with finite differences, so 'equals autograd' means 'is right'."""
    n_s, d = 3, 4
    x = torch.randn(2, n_s, d, generator=gen, dtype=torch.float64, requires_grad=True)
    fn, scale, base = (t.requires_grad_(True) for t in random_params(n_s, d, gen))
    Z = torch.randn(2, n_s, n_s, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: ops.sinkhorn_knopp(z, 20), (Z,))
    assert torch.autograd.gradcheck(lambda z: ops.sinkhorn_knopp(z, 1), (Z,))
    assert torch.autograd.gradcheck(lambda *a: ops.hc_pre(*a, K=20), (x, fn, scale, base))
    f = torch.randn(2, d, generator=gen, dtype=torch.float64, requires_grad=True)
    post = torch.rand(2, n_s, generator=gen, dtype=torch.float64, requires_grad=True)
    comb = torch.rand(2, n_s, n_s, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ops.hc_post, (f, x, post, comb))


@settings(max_examples=15, deadline=None)
@given(n_s=st.integers(2, 5), d=st.integers(1, 10), K=st.sampled_from([1, 3, 20]), seed=st.integers(0, 2**31 - 1))
def test_gate_jacobians_equal_autograd_and_norms_equal_svd(n_s, d, K, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, n_s, d, generator=g, dtype=torch.float64)
    fn, scale, base = random_params(n_s, d, g, batch=(2,))
    J = jac.gate_jacobians(x, fn, scale, base, K=K)
    norms = jac.gate_jacobian_norms(x, fn, scale, base, K=K)
    for b in range(2):
        weights = lambda v, b=b: ops.hc_weights(v, fn[b], scale[b], base[b], K=K)  # noqa: E731
        ref = jacobian(lambda v, w=weights: w(v).pre, x[b]).reshape(n_s, -1)
        torch.testing.assert_close(J.pre[b], ref, rtol=1e-9, atol=1e-12)
        ref = jacobian(lambda v, w=weights: w(v).post, x[b]).reshape(n_s, -1)
        torch.testing.assert_close(J.post[b], ref, rtol=1e-9, atol=1e-12)
        ref = per_entry_autograd_jacobian(lambda v, w=weights: w(v).comb, x[b])
        torch.testing.assert_close(J.comb[b], ref, rtol=1e-9, atol=1e-12)
        for name in ("pre", "post", "comb"):
            svd = torch.linalg.matrix_norm(getattr(J, name)[b], ord=2)
            torch.testing.assert_close(getattr(norms, name)[b], svd, rtol=1e-8, atol=1e-12)


def test_comb_is_scale_invariant_in_x(gen):
    """∂C/∂x · x ≈ 0: the RMS normalisation makes C depend on x's direction only, up to norm_eps."""
    n_s, d = 4, 64
    x = torch.randn(6, n_s, d, generator=gen, dtype=torch.float64)
    fn, scale, base = random_params(n_s, d, gen)
    J = jac.gate_jacobians(x, fn, scale, base)
    x_flat = x.reshape(6, -1, 1)
    for name in ("pre", "post", "comb"):
        Jn = getattr(J, name)
        radial = (Jn @ x_flat).squeeze(-1).norm(dim=-1)
        full = torch.linalg.matrix_norm(Jn, ord=2) * x_flat.squeeze(-1).norm(dim=-1)
        assert (radial / full).max() < 1e-5  # O(norm_eps / mean(x²)) = O(1e-6)
    # with norm_eps = 0 it is exact to round-off
    J0 = jac.gate_jacobians(x, fn, scale, base, norm_eps=0.0)
    assert (J0.comb @ x_flat).abs().max() < 1e-13


def test_sinkhorn_jacobians_at_several_K_are_each_Ks_jacobian(gen):
    Z = torch.randn(3, 4, 4, generator=gen, dtype=torch.float64) * 1.5
    out = jac.sinkhorn_jacobians(Z, [20, 1, 5])
    assert list(out) == [20, 1, 5]  # in the order asked, from one run of 20 rounds
    for K, J in out.items():
        torch.testing.assert_close(J, jac.sinkhorn_jacobian(Z, K), rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match=r"K values must be >= 1, got \[0, 3\]"):
        jac.sinkhorn_jacobians(Z, [3, 0])


def test_generator_jacobian_factors_multiply_to_the_autograd_comb_jacobian(gen):
    """``J_comb = s_C · DS_K(Z) · W_comb · D RMSNorm(x)``: each factor against its own definition, their product
    and the Gram matrix against autograd's Jacobian of the comb."""
    n_s, d, K = 3, 5, 7
    x = torch.randn(2, n_s, d, generator=gen, dtype=torch.float64)
    fn, scale, base = random_params(n_s, d, gen)
    G = jac.generator_jacobian(x, fn, scale, base, K=K)
    torch.testing.assert_close(G.fn_gram.expand(2, -1, -1), (fn @ fn.T).expand(2, -1, -1))
    for b in range(2):
        norm = jacobian(lambda v: v * ops.rms_rsqrt(v), x[b].reshape(-1))  # D RMSNorm(x), (N, N)
        torch.testing.assert_close(G.rms_gain[b].reshape(()), torch.linalg.matrix_norm(norm, ord=2))
        _, _, Z = ops.gate_logits(ops.hc_mixes(x[b], fn), scale, base, n_s)
        torch.testing.assert_close(G.sinkhorn[b], jac.sinkhorn_jacobian(Z, K))
        chain = scale[2] * G.sinkhorn[b] @ fn[2 * n_s :] @ norm
        ref = per_entry_autograd_jacobian(lambda v: ops.hc_weights(v, fn, scale, base, K=K).comb, x[b])
        torch.testing.assert_close(chain, ref, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(G.grams.comb[b], ref @ ref.T, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("shape", [(4, 4), (3, 6, 6)])
def test_top_singular_value_from_the_gram_is_the_largest_singular_value(shape, gen):
    J = torch.randn(*shape[:-1], shape[-1] + 3, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(jac.top_singular_value(J @ J.transpose(-1, -2)), torch.linalg.svdvals(J)[..., 0])
