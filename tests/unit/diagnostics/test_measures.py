"""Each diagnostic against a naive implementation of its definition (fp64); against the seed's script in
tests/integration/test_reference.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mhc_mup.diagnostics import measures as dg
from mhc_mup.diagnostics.summaries import summarize
from mhc_mup.mhc import gauge, ops
from tests.helpers import per_entry_autograd_jacobian, random_params


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


def test_sinkhorn_error_and_spectral_stats_closed_forms():
    n = 4
    perm = torch.eye(n)[[1, 2, 3, 0]]
    assert dg.sinkhorn_error(perm) == 0
    assert dg.sinkhorn_error(perm * 1.5) == pytest.approx(0.5)
    uniform = torch.full((n, n), 1.0 / n, dtype=torch.float64)
    s = dg.spectral_stats(torch.stack([perm.double(), 0.5 * perm.double() + 0.5 * uniform]))
    torch.testing.assert_close(s.sigma_max, torch.tensor([1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(s.sigma_min, torch.tensor([1.0, 0.5], dtype=torch.float64))
    median = summarize("spectral_norm", s)["condition_number_median"]
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


def test_typical_sensitivities_and_chain_factors_equal_explicit_jacobians(gen):
    """Random-direction RMS = ‖J‖_F/√N; gradient direction v = Jᵀw/‖Jᵀw‖ with the same w the function
    draws; each chain factor from its own definition; the bound holds sample by sample."""
    n_s, d, K, B = 4, 24, 20, 5
    x = torch.randn(B, n_s, d, generator=gen, dtype=torch.float64) * 1.7
    fn, scale, base = random_params(n_s, d, gen, batch=(B,), sigma=2.0)
    sens, chain = dg.sensitivity_and_chain(x, fn, scale, base, K, generator=torch.Generator().manual_seed(7))
    replay = torch.Generator().manual_seed(7)  # the function draws w for comb, pre, post in that order
    ws = {
        f: torch.randn(B, m, generator=replay, dtype=torch.float64) for f, m in (("comb", 16), ("pre", 4), ("post", 4))
    }
    N = n_s * d
    for b in range(B):
        xn = x[b].norm()

        def gates(v, b=b):
            return ops.hc_weights(v, fn[b], scale[b], base[b], K=K)

        for key, field in (("dc_x", "comb"), ("dp_x", "pre"), ("dq_x", "post")):
            J = per_entry_autograd_jacobian(lambda v, f=field: getattr(gates(v), f), x[b])
            rms = torch.linalg.matrix_norm(J, "fro") / N**0.5 * xn
            assert getattr(sens, f"{key}_random")[b].item() == pytest.approx(rms.item(), rel=1e-9)
            v = J.T @ ws[field][b]
            v = v / v.norm()
            assert getattr(sens, f"{key}_grad")[b].item() == pytest.approx(((J @ v).norm() * xn).item(), rel=1e-9)
            # a Monte-Carlo check of the random-direction reading itself
            u = torch.randn(4000, N, generator=gen, dtype=torch.float64)
            u = u / u.norm(dim=-1, keepdim=True)
            mc = ((u @ J.T).square().sum(-1).mean().sqrt() * xn).item()
            assert getattr(sens, f"{key}_random")[b].item() == pytest.approx(mc, rel=0.08)
        # chain factors, each from its definition
        flat = x[b].reshape(-1)
        D_rms = torch.autograd.functional.jacobian(lambda v: v * torch.rsqrt(v.square().mean() + 1e-6), flat)
        assert chain.rms_jacobian[b].item() == pytest.approx(torch.linalg.matrix_norm(D_rms, 2).item(), rel=1e-9)
        assert chain.scale_comb[b].item() == abs(scale[b, 2].item())
        w_comb = torch.linalg.matrix_norm(fn[b, 2 * n_s :], 2).item()
        assert chain.w_comb[b].item() == pytest.approx(w_comb, rel=1e-9)
        mixes = ops.hc_mixes(x[b], fn[b])
        Z = (mixes[2 * n_s :] * scale[b, 2] + base[b, 2 * n_s :]).reshape(n_s, n_s)
        DS = per_entry_autograd_jacobian(lambda z: ops.sinkhorn_knopp(z, K), Z)
        assert chain.sinkhorn_jacobian[b].item() == pytest.approx(torch.linalg.matrix_norm(DS, 2).item(), rel=1e-9)
        assert chain.x_norm[b].item() == pytest.approx(xn.item(), rel=1e-12)
        product = chain.rms_jacobian[b] * chain.scale_comb[b] * chain.w_comb[b] * chain.sinkhorn_jacobian[b] * xn
        assert chain.bound[b].item() == pytest.approx(product.item(), rel=1e-12)
        assert chain.measured[b].item() == pytest.approx(sens.dc_x[b].item(), rel=1e-12)
    assert torch.all(chain.measured <= chain.bound * (1 + 1e-12))
    torch.testing.assert_close(chain.tightness, chain.measured / chain.bound)
    # the two public wrappers agree with the joint function
    torch.testing.assert_close(dg.chain_decomposition(x, fn, scale, base, K).bound, chain.bound)
    torch.testing.assert_close(dg.dynamic_sensitivity(x, fn, scale, base, K).dc_x, sens.dc_x)


def _one_step(opt_name, lrs, x, W, s, b, K):
    """``ΔZ`` after one real ``torch.optim`` step on ‖C − I‖² with one parameter group per tensor."""
    n_s = x.shape[-2]
    Wp, sp, bp = (t.clone().requires_grad_(True) for t in (W, s, b))
    groups = [{"params": [p], "lr": lr} for p, lr in zip((Wp, sp, bp), lrs, strict=True)]
    opt = torch.optim.SGD(groups) if opt_name == "sgd" else torch.optim.Adam(groups, eps=1e-8)
    flat = x.reshape(-1)
    x_hat = flat * torch.rsqrt(flat.square().mean() + 1e-6)

    def logits():
        return sp * (Wp @ x_hat) + bp

    Z = logits().detach()
    C = ops.sinkhorn_knopp(logits().reshape(n_s, n_s), K)
    ((C - torch.eye(n_s, dtype=x.dtype)) ** 2).sum().backward()
    opt.step()
    with torch.no_grad():
        return logits() - Z


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_logit_update_equals_a_torch_optim_step_with_per_group_rates(opt_name, gen):
    n_s, d, K = 4, 32, 20
    lrs = (0.05, 0.3, 0.02)  # η_W, η_s, η_b all different, so a swapped group would show
    x = torch.randn(4, n_s, d, generator=gen, dtype=torch.float64)
    W = torch.randn(4, n_s * n_s, n_s * d, generator=gen, dtype=torch.float64) * 0.3
    s = torch.tensor([0.7], dtype=torch.float64)
    b = torch.randn(n_s * n_s, generator=gen, dtype=torch.float64) * 0.2
    out = dg.logit_update(x, W, s, b, lrs, K, optimizer=opt_name)
    P_perp = gauge.perp_projector(n_s)
    for i in range(4):
        dZ = _one_step(opt_name, lrs, x[i], W[i], s, b, K)
        assert out.total_norm[i].item() == pytest.approx(dZ.norm().item(), rel=1e-9)
        assert out.proj_perp_norm[i].item() == pytest.approx((P_perp @ dZ).norm().item(), rel=1e-9)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        dg.logit_update(x, W, s, b, 1e-3, K, optimizer="lion")


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
    out = summarize("dynamic_sensitivity", values)
    assert out["dc_x_mean"] == 4.0
    assert out["dc_x_std"] == pytest.approx(np.std([1.0, 2.0, 3.0, 10.0]))  # ddof 0, as the seed
    assert out["dc_x_grad_mean"] == 2.0 and out["dq_x_mean"] == 0.0
    assert {"dc_x_mean", "dc_x_std", "dp_x_mean", "dp_x_std", "dq_x_mean", "dq_x_std"} <= set(out)
