"""Each diagnostic against a naive implementation of its definition (fp64), and against the seed's script."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_params
from test_jacobians import per_entry_autograd_jacobian

from mhc_mup import diagnostics as dg
from mhc_mup import gauge, ops


def test_gauge_geometry_closed_forms():
    for n in (2, 3, 4, 6):
        B = gauge.tangent_basis(n)
        P_perp, P_G = gauge.perp_projector(n), gauge.gauge_projector(n)
        assert B.shape == (n * n, (n - 1) ** 2)
        torch.testing.assert_close(B.T @ B, torch.eye((n - 1) ** 2, dtype=torch.float64))
        torch.testing.assert_close(B @ B.T, P_perp)
        torch.testing.assert_close(P_perp @ P_perp, P_perp)
        assert torch.linalg.matrix_rank(P_G) == 2 * n - 1
        # G⊥ = {Δ : Δ1 = 0, 1ᵀΔ = 0}: every basis element has zero row and column sums
        mats = B.T.reshape(-1, n, n)
        assert mats.sum(-1).abs().max() < 1e-14 and mats.sum(-2).abs().max() < 1e-14
        # the gauge r1ᵀ + 1cᵀ is fixed by Π_G and killed by Π_⊥
        r, c = torch.randn(n, 1, dtype=torch.float64), torch.randn(1, n, dtype=torch.float64)
        g = (r + c).reshape(-1)
        torch.testing.assert_close(P_G @ g, g)
        assert (P_perp @ g).abs().max() < 1e-14
        Z = torch.randn(3, n, n, dtype=torch.float64)
        torch.testing.assert_close(gauge.project_perp(Z).reshape(3, -1), Z.reshape(3, -1) @ P_perp)


def test_projector_matches_the_seeds_qr_construction(reference):
    torch.testing.assert_close(
        gauge.perp_projector(4, dtype=torch.float32), reference.gauge_projector(4), rtol=0, atol=1e-6
    )


def test_sinkhorn_error_spectral_and_gate_stats_match_the_seed(reference, gen):
    n_s, d = 4, 16
    x = torch.randn(4, 16, n_s, d, generator=gen)
    fn, scale, base = random_params(n_s, d, gen, dtype=torch.float32, sigma=3.0)
    pre, post, comb = ops.hc_weights(x, fn, scale, base)
    ours = dg.summarize("sinkhorn_error", {"eps_K": dg.sinkhorn_error(comb)})
    assert ours == pytest.approx(reference.diagnostic_1_sinkhorn_error(comb), rel=1e-12)
    ours = dg.summarize("spectral_norm", dg.spectral_stats(comb))
    theirs = reference.diagnostic_2_spectral_norm(comb)
    assert {k: ours[k] for k in theirs} == pytest.approx(theirs, rel=1e-6)
    ours = dg.summarize("gate_stats", dg.gate_stats(pre, post))
    assert ours == pytest.approx(reference.diagnostic_6_gate_stats(pre, post), rel=1e-6)


def test_sinkhorn_error_and_spectral_stats_closed_forms():
    n = 4
    perm = torch.eye(n)[[1, 2, 3, 0]]
    assert dg.sinkhorn_error(perm) == 0
    assert dg.sinkhorn_error(perm * 1.5) == pytest.approx(0.5)
    uniform = torch.full((n, n), 1.0 / n, dtype=torch.float64)
    s = dg.spectral_stats(torch.stack([perm.double(), 0.5 * perm.double() + 0.5 * uniform]))
    torch.testing.assert_close(s.sigma_max, torch.tensor([1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(s.sigma_min, torch.tensor([1.0, 0.5], dtype=torch.float64))
    median = dg.summarize("spectral_norm", s)["condition_number_median"]
    assert median == pytest.approx(1.5, rel=1e-8)


def test_quotient_jacobian_equals_naive_per_entry_computation(gen):
    n = 4
    Z = torch.randn(6, n, n, generator=gen, dtype=torch.float64)
    # the seed's basis: eigenvectors of the QR-built projector, not our Helmert ⊗ Helmert
    G = torch.zeros(n * n, 2 * n, dtype=torch.float64)
    for i in range(n):
        G[i * n : (i + 1) * n, i] = 1.0
        G[i::n, n + i] = 1.0
    Q, _ = torch.linalg.qr(G)
    Q = Q[:, : 2 * n - 1]
    P_G = Q @ Q.T
    basis = torch.linalg.eigh(torch.eye(n * n, dtype=torch.float64) - P_G).eigenvectors[:, -((n - 1) ** 2) :]
    for K in (1, 2, 20):
        q = dg.quotient_jacobian(Z, K)
        for b in range(6):
            J = per_entry_autograd_jacobian(lambda z, K=K: ops.sinkhorn_knopp(z, K), Z[b])
            sv = torch.linalg.svdvals(basis.T @ J @ basis)
            assert q.sigma_max[b] == pytest.approx(sv[0].item(), rel=1e-10)
            assert q.sigma_min[b] == pytest.approx(sv[-1].item(), rel=1e-9)
            leak = torch.linalg.matrix_norm(P_G @ J @ basis, 2) / torch.linalg.matrix_norm(J @ basis, 2)
            assert q.gauge_leakage[b] == pytest.approx(leak.item(), rel=1e-6, abs=1e-15)


def test_dynamic_sensitivity_equals_per_entry_backward_loops(gen):
    n_s, d, K = 4, 24, 20
    x = torch.randn(5, n_s, d, generator=gen, dtype=torch.float64)
    fn, scale, base = random_params(n_s, d, gen, batch=(5,), sigma=2.0)
    s = dg.dynamic_sensitivity(x, fn, scale, base, K)
    for b in range(5):

        def gates(v, b=b):
            return ops.hc_weights(v, fn[b], scale[b], base[b], K=K)

        xn = x[b].norm().item()
        for name, field in (("dc_x", "comb"), ("dp_x", "pre"), ("dq_x", "post")):
            J = per_entry_autograd_jacobian(lambda v, f=field: getattr(gates(v), f), x[b])
            expect = torch.linalg.matrix_norm(J, ord=2).item() * xn
            assert getattr(s, name)[b].item() == pytest.approx(expect, rel=1e-9)


def test_logit_update_equals_an_explicit_sgd_step(gen):
    """The seed's procedure: parameters, loss ‖C − I‖², .backward(), W −= lr·grad, recompute Z."""
    n_s, d, K, lr = 4, 32, 20, 0.5  # a large lr, so the lr² term of the closed form matters
    x = torch.randn(6, n_s, d, generator=gen, dtype=torch.float64)
    W = torch.randn(6, n_s * n_s, n_s * d, generator=gen, dtype=torch.float64) * 0.3
    s = torch.tensor([0.7], dtype=torch.float64)
    b = torch.randn(n_s * n_s, generator=gen, dtype=torch.float64) * 0.2
    out = dg.logit_update(x, W, s, b, lr, K)
    P_perp = gauge.perp_projector(n_s)
    for i in range(6):
        Wp, sp, bp = (t.clone().requires_grad_(True) for t in (W[i], s, b))
        flat = x[i].reshape(-1)
        x_hat = flat * torch.rsqrt(flat.square().mean() + 1e-6)
        Z = sp * (Wp @ x_hat) + bp
        C = ops.sinkhorn_knopp(Z.reshape(n_s, n_s), K)
        ((C - torch.eye(n_s, dtype=torch.float64)) ** 2).sum().backward()
        with torch.no_grad():
            Z_new = (sp - lr * sp.grad) * ((Wp - lr * Wp.grad) @ x_hat) + (bp - lr * bp.grad)
            dZ = Z_new - Z
        assert out.total_norm[i].item() == pytest.approx(dZ.norm().item(), rel=1e-9)
        assert out.proj_perp_norm[i].item() == pytest.approx((P_perp @ dZ).norm().item(), rel=1e-9)
        assert out.perp_ratio[i].item() == pytest.approx(
            (P_perp @ dZ).norm().item() / (dZ.norm().item() + 1e-10), rel=1e-9
        )


def test_summarize_reductions():
    values = {name: np.ones(4) for name in dg.Sensitivity._fields}
    values |= {"dc_x": np.array([1.0, 2.0, 3.0, 10.0]), "dq_x": np.zeros(4), "dc_x_grad": np.array([1.0, 3.0])}
    out = dg.summarize("dynamic_sensitivity", values)
    assert out["dc_x_mean"] == 4.0
    assert out["dc_x_std"] == pytest.approx(np.std([1.0, 2.0, 3.0, 10.0]))  # ddof 0, as the seed
    assert out["dc_x_grad_mean"] == 2.0 and out["dq_x_mean"] == 0.0
    assert {"dc_x_mean", "dc_x_std", "dp_x_mean", "dp_x_std", "dq_x_mean", "dq_x_std"} <= set(out)
