"""Triton kernels for V4's mHC: hc_pre and hc_post, forward and backward.

Imported only where Triton is installed (CUDA builds of PyTorch ship it); :mod:`mhc_mup.kernels.fused` decides
when to use it. Every function here is a pure function on tensors with the shapes of :mod:`mhc_mup.mhc.ops`,
flattened over the leading dims: the residual state ``x`` is ``(T, N, D)`` (bf16, fp16 or fp32), the
generator ``fn`` ``((2+N)·N, N·D)`` fp32, ``scale`` ``(3,)``, ``base`` ``((2+N)·N,)``. All mHC math
runs in fp32 on-chip; only the streams and branch tensors keep their storage dtype.

Launches. ``hc_pre`` forward: a split-K projection pass (``x_flat @ fnᵀ`` and ``Σ x²``) writes small
per-token partials; a per-token pass sums them and keeps everything else in registers (the RMS scale, the
gates, all ``K`` Sinkhorn steps), while other programs of the same launch do the pre-weighted collapse; it
stores the mixes and ``r`` ((2+N)·N + 1 floats per token) so that the backward need not recompute the
projection. ``hc_pre`` backward: ``⟨∂L/∂y, x_i⟩`` in programs beside the post and comb gates' backward (the
Sinkhorn's), a small per-token launch for the pre gate, a column-tiled pass writing ∂L/∂x while accumulating
∂L/∂fn, and one launch for the fixed-order sums of the parameter gradients' partials. ``hc_post``: one launch
each way.

**fp32 accuracy on the tensor cores.** With bf16 streams the dots against x take x as a bf16 operand and
split the fp32 factor (fn, or ∂L/∂mixes) into three bf16 parts that sum to it exactly: every product is
then exact in fp32 and the result is the fp32 dot up to the accumulation's round-off, at bf16 speed. The one
dot of two fp32 factors (∂L/∂mixes @ fn, for ∂L/∂x) takes the six products of their parts that matter. fp16
and fp32 streams use tf32x3 dots (three tf32 products per fp32 product).

**Backward of the Sinkhorn steps.** The kernels differentiate the K unrolled steps exactly, as autograd
through :func:`mhc_mup.mhc.ops.sinkhorn_knopp` does, not the fixed point: at K = 1 or 2 the iterate is far
from doubly stochastic and the implicit-function gradient would be a different (wrong) gradient, and the
fixed-point linear system is singular along the gauge directions. The iterates are recomputed on-chip from
the logits with the forward's arithmetic, each round's input kept in a per-program scratch slice
(``(K-1)·16`` floats per token at ``n_s`` = 4, which stays in L2), and the rounds are then differentiated
last first: O(K) work, and the result is the reverse-mode derivative of exactly the forward's arithmetic.
"""

from __future__ import annotations

import functools
import os

import torch
import triton
import triton.language as tl

# Tile shapes, chosen on the H100 (benchmarks/bench_fused.py --tune times the variants).
PROJ_BLOCK_T = 128  # split-K projection: token block, columns of each stream per chunk, splits of D, warps, stages
PROJ_BLOCK_D = 32
PROJ_SPLITS = 8
PROJ_WARPS = 8
PROJ_STAGES = 2
PROJ_FP32 = (32, 16, 4)  # fp32 streams' tiles (token block, columns per stream, warps; one stage): shared memory
PRE_BLOCK_T = 16  # gates and Sinkhorn: token block, warps (latency-bound: small blocks, one warp)
GATE_WARPS = 1
PRE_BLOCK_D = 64  # the collapse y = Σ pre_i x_i: column chunk, programs per token block
COLLAPSE_SPLITS = 4
GY_BLOCK_D = 64  # the backward's ⟨∂L/∂y, x_i⟩ programs (beside the Sinkhorn backward's): column chunk, splits of D
GY_SPLITS = 4
GRAD_BLOCK_T = 64  # ∂L/∂x and ∂L/∂fn: token chunk and column block of x_flat
GRAD_BLOCK_C = 128
GRAD_STAGES = 2
GRAD_WARPS = 4
GRAD_FP32 = (64, 64, 4, 2)  # fp32 streams' tiles (token chunk, column block, warps, stages): half the bf16 column
# block, so that two stages fit in shared memory (bench_fused.py --tune --stream-dtype float32 times the variants)
GRAD_PROGRAMS_PER_SM = 2  # token splits of the ∂L/∂x pass: more programs hide latency, more ∂L/∂fn partials
POST_BLOCK_T = 16  # hc_post forward: token block, column block, warps
POST_BLOCK_D = 128
POST_WARPS = 8
POST_BWD_BLOCK_T = 4  # hc_post backward (one token block per program, looping over the columns)
POST_BWD_BLOCK_D = 128
POST_BWD_WARPS = 2
SUM_BLOCK = 1024  # the ∂L/∂fn partials' sum: elements per program; rows of the ∂L/∂(base, scale) partials per step
SUM_ROWS = 256
SUM_WARPS = 8
DOT_PRECISION = "tf32x3"  # three tf32 products per fp32 product: fp32-accurate on the tensor cores
BF16_SPLIT = True  # bf16 streams: dots with x as a bf16 operand against fp32 factors split in 3 bf16 parts

_FILL = tl.constexpr(-1.0e30)  # logit of a padded Sinkhorn entry: exp underflows to exactly 0 after the max shift


def _new(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An output buffer; every element is written by a kernel (the tests poison it to check that)."""
    return torch.empty(shape, dtype=dtype, device=device)


def generator_rows_padded(n_s: int) -> int:
    """The generator's ``(2+n_s)·n_s`` rows padded to a power of two ≥ 16 (the smallest tensor-core dot)."""
    return max(16, triton.next_power_of_2((2 + n_s) * n_s))


def padded_streams(n_s: int) -> int:
    """The power of two ≥ ``n_s`` that the kernels pad the stream axis to."""
    return triton.next_power_of_2(n_s)


# ── Sinkhorn in registers ──────────────────────────────────────────────────────────────────────
@triton.jit
def _row_col_valid(N: tl.constexpr, NP: tl.constexpr):
    a = tl.arange(0, NP)
    return ((a[:, None] < N) & (a[None, :] < N))[None, :, :]


@triton.jit
def _softmax_rows(Z, valid):
    """Row softmax of ``Z`` ``[BT, NP, NP]`` over the valid entries; padded entries are 0."""
    z = tl.where(valid, Z, _FILL)
    e = tl.exp(z - tl.max(z, 2)[:, :, None])
    p = e / tl.sum(e, 2)[:, :, None]
    return tl.where(valid, p, 0.0)


@triton.jit
def _col_norm(c, eps):
    return c / (tl.sum(c, 1)[:, None, :] + eps)


@triton.jit
def _row_norm(c, eps):
    return c / (tl.sum(c, 2)[:, :, None] + eps)


@triton.jit
def _sinkhorn_fwd(Z, valid, K, eps):
    """``mhc_mup.mhc.ops.sinkhorn_knopp`` on ``[BT, NP, NP]`` logits: softmax over rows + eps, a column
    normalisation, then K-1 (row, column) rounds, each dividing by ``sum + eps``."""
    c = _col_norm(tl.where(valid, _softmax_rows(Z, valid) + eps, 0.0), eps)
    for _ in range(K - 1):
        c = _col_norm(_row_norm(c, eps), eps)
    return c


@triton.jit
def _sinkhorn_bwd(Z, g, valid, K, eps, scratch_ptr, off3, smask, stride):
    """∂L/∂Z from ∂L/∂comb ``g`` through the K unrolled steps.

    A forward sweep stores each round's input ``[BT, NP, NP]`` at ``scratch_ptr + (k-1)·stride + off3`` (the
    program's own slice, read back by the same program), then the rounds are differentiated last first.
    For ``u = a / (Σ a + eps)`` along one axis, ``∂L/∂a = (g − Σ g·u) / (Σ a + eps)`` along that axis;
    for ``p = softmax(Z)``, ``∂L/∂Z = p·(g − Σ g·p)`` along the rows.
    """
    p = _softmax_rows(Z, valid)
    c0 = tl.where(valid, p + eps, 0.0)
    a = _col_norm(c0, eps)
    for k in range(1, K):  # the input of round k: rounds 1…k-1 applied, exactly as in the forward
        tl.store(scratch_ptr + (k - 1) * stride + off3, a, mask=smask)
        a = _col_norm(_row_norm(a, eps), eps)
    tl.debug_barrier()
    g = tl.where(valid, g, 0.0)
    a = tl.load(scratch_ptr + tl.maximum(K - 2, 0) * stride + off3, mask=smask, other=0.0)  # (unused if K = 1)
    # rounds K-1 … 1, last first; counted up, since a negative-step range gave wrong gradients on the H100
    for j in range(0, K - 1):
        k = K - 1 - j
        # round k-1's input, fetched now so that its latency overlaps round k's arithmetic
        a_next = tl.load(scratch_ptr + tl.maximum(k - 2, 0) * stride + off3, mask=smask, other=0.0)
        s_row = tl.sum(a, 2)[:, :, None] + eps
        b = a / s_row  # round k's row step; its column step follows
        s_col = tl.sum(b, 1)[:, None, :] + eps
        u = b / s_col
        g = tl.where(valid, (g - tl.sum(g * u, 1)[:, None, :]) / s_col, 0.0)  # padded entries stay 0, not g/eps
        g = tl.where(valid, (g - tl.sum(g * b, 2)[:, :, None]) / s_row, 0.0)
        a = a_next
    s_col = tl.sum(c0, 1)[:, None, :] + eps
    u = c0 / s_col
    g = (g - tl.sum(g * u, 1)[:, None, :]) / s_col
    return tl.where(valid, p * (g - tl.sum(g * p, 2)[:, :, None]), 0.0)


# ── fp32-accurate dots on bf16 tensor cores ─────────────────────────────────────────────────────
@triton.jit
def _split_bf16(w):
    """fp32 ``w`` as three bf16 parts that sum to it exactly: 8 significant bits each, and bf16 has fp32's
    exponent range (exact for |w| ≥ 2^-103, where the smallest part is still normal; below, what is lost is
    under 2^-126). Exact under round-to-nearest and under truncation alike."""
    hi = w.to(tl.bfloat16)
    rest = w - hi.to(tl.float32)
    mid = rest.to(tl.bfloat16)
    lo = (rest - mid.to(tl.float32)).to(tl.bfloat16)
    return hi, mid, lo


@triton.jit
def _split_bf16_kernel(w_ptr, parts_ptr, n, B: tl.constexpr):
    i = tl.program_id(0) * B + tl.arange(0, B)
    hi, mid, lo = _split_bf16(tl.load(w_ptr + i, mask=i < n, other=0.0))
    tl.store(parts_ptr + i, hi, mask=i < n)
    tl.store(parts_ptr + n + i, mid, mask=i < n)
    tl.store(parts_ptr + 2 * n + i, lo, mask=i < n)


def split_bf16(w: torch.Tensor) -> torch.Tensor:
    """The kernels' split of fp32 ``w`` into three bf16 parts, ``(3, *w.shape)`` bf16 (for inspection and tests)."""
    w = w.to(torch.float32).contiguous()
    parts = _new((3, *w.shape), torch.bfloat16, w.device)
    _split_bf16_kernel[(triton.cdiv(w.numel(), 1024),)](w, parts, w.numel(), B=1024)
    return parts


@triton.jit
def _dot_bf16(a, b, acc, EMULATE: tl.constexpr):
    """``acc + a @ b`` for bf16 ``a`` and ``b`` with fp32 accumulation. ``EMULATE``: as an fp32 dot of the same
    (exactly representable) values, for Triton's interpreter, which does not do bf16 arithmetic."""
    if EMULATE:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    return tl.dot(a, b, acc)


@triton.jit
def _dot_bf16_fp32(a, b, acc, EMULATE: tl.constexpr):
    """``acc + a @ b`` for bf16 ``a`` and fp32 ``b``: each product of ``a`` with a bf16 part of ``b`` is exact
    in fp32, so this is the fp32 dot up to the accumulation's round-off, at bf16 tensor-core speed."""
    hi, mid, lo = _split_bf16(b)
    acc = _dot_bf16(a, lo, acc, EMULATE)
    acc = _dot_bf16(a, mid, acc, EMULATE)
    return _dot_bf16(a, hi, acc, EMULATE)


@triton.jit
def _dot_split_parts(a_hi, a_mid, a_lo, b_hi, b_mid, b_lo, acc, EMULATE: tl.constexpr):
    """``acc + a @ b`` for fp32 ``a`` and ``b`` given as their three bf16 parts: the six exact products of parts
    whose orders sum to at most 2, smallest first. The three dropped ones are under 2^-24·|a||b|, fp32's
    own round-off, so this is the fp32 dot to fp32 accuracy (more accurate than tf32x3), on bf16 tensor cores."""
    acc = _dot_bf16(a_lo, b_hi, acc, EMULATE)
    acc = _dot_bf16(a_mid, b_mid, acc, EMULATE)
    acc = _dot_bf16(a_hi, b_lo, acc, EMULATE)
    acc = _dot_bf16(a_mid, b_hi, acc, EMULATE)
    acc = _dot_bf16(a_hi, b_mid, acc, EMULATE)
    return _dot_bf16(a_hi, b_hi, acc, EMULATE)


# ── shared pieces of the hc_pre kernels ─────────────────────────────────────────────────────────
# The projection runs over all R = (2+N)·N generator rows at once (R padded to a power of two ≥ 16, the
# smallest tensor-core dot); per token, its rows (the mixes, and their gradients) are stored in fn's row
# order, pre [0, N), post [N, 2N), comb [2N, R) row-major, and read back per gate as [NP] / [NP, NP] tiles.
@triton.jit
def _gate_offsets(N: tl.constexpr, NP: tl.constexpr):
    """Offsets in fn's row order of the pre/post ``[NP]`` and comb ``[NP, NP]`` entries, and their masks."""
    i = tl.arange(0, NP)
    a = i[:, None]
    b = i[None, :]
    return i, N + i, 2 * N + a * N + b, i < N, (a < N) & (b < N)


@triton.jit
def _gate_logits(pre_m, post_m, comb_m, scale_ptr, base_ptr, N: tl.constexpr, NP: tl.constexpr):
    """Each gate's pre-activation ``mixes·s + b`` (``ops.gate_logits``) from its mixes."""
    r_pre, r_post, r_comb, v_gate, v_comb = _gate_offsets(N, NP)
    a_pre = pre_m * tl.load(scale_ptr) + tl.load(base_ptr + r_pre, mask=v_gate, other=0.0)[None, :]
    a_post = post_m * tl.load(scale_ptr + 1) + tl.load(base_ptr + r_post, mask=v_gate, other=0.0)[None, :]
    z = comb_m * tl.load(scale_ptr + 2) + tl.load(base_ptr + r_comb, mask=v_comb, other=0.0)[None, :, :]
    return a_pre, a_post, z


@triton.jit
def _load_mixes(
    mixes_ptr, t64, tmask, T, SPLITS: tl.constexpr, R: tl.constexpr, N: tl.constexpr, NP: tl.constexpr, BT: tl.constexpr
):
    """A token block's mixes ``[BT, NP]``, ``[BT, NP]``, ``[BT, NP, NP]`` from rows ``(SPLITS, T, R)`` in fn's order,
    summed over the splits (split-K partials of the projection; ``SPLITS`` = 1: the stored mixes)."""
    r_pre, r_post, r_comb, v_gate, v_comb = _gate_offsets(N, NP)
    m2 = tmask[:, None] & v_gate[None, :]
    m3 = tmask[:, None, None] & v_comb[None, :, :]
    pre = tl.zeros((BT, NP), tl.float32)
    post = tl.zeros((BT, NP), tl.float32)
    comb = tl.zeros((BT, NP, NP), tl.float32)
    for sp in tl.static_range(SPLITS):
        row = (sp * T + t64) * R
        pre += tl.load(mixes_ptr + row[:, None] + r_pre[None, :], mask=m2, other=0.0)
        post += tl.load(mixes_ptr + row[:, None] + r_post[None, :], mask=m2, other=0.0)
        comb += tl.load(mixes_ptr + row[:, None, None] + r_comb[None, :, :], mask=m3, other=0.0)
    return pre, post, comb


@triton.jit
def _stream_tile(x_ptr, t64, tmask, d0, d_end, N: tl.constexpr, D, NP: tl.constexpr, BD: tl.constexpr):
    """Columns ``d0 … min(d0+BD, d_end)`` of every stream of a token block, ``[BT, NP, BD]`` in fp32 (padding 0)."""
    iv = tl.arange(0, NP)
    dd = d0 + tl.arange(0, BD)
    off = t64[:, None, None] * (N * D) + iv[None, :, None] * D + dd[None, None, :]
    mask = tmask[:, None, None] & (iv[None, :, None] < N) & (dd[None, None, :] < d_end)
    return tl.load(x_ptr + off, mask=mask, other=0.0).to(tl.float32)


# ── hc_pre ─────────────────────────────────────────────────────────────────────────────────────
@triton.jit
def _projection_kernel(
    x_ptr,
    fn_ptr,
    proj_ptr,
    sumsq_ptr,
    T,
    D,
    cols_per_split,
    N: tl.constexpr,
    NP: tl.constexpr,
    R: tl.constexpr,
    RP: tl.constexpr,
    BT: tl.constexpr,
    BD: tl.constexpr,
    SPLIT: tl.constexpr,
    EMULATE: tl.constexpr,
    PREC: tl.constexpr,
):
    """Split-K pass, program (token block, column split): partial ``x_flat @ fnᵀ`` ``(split, T, R)`` in fn's row
    order (fp32-accurate tensor-core dots: bf16 x against fn split in three bf16 parts with ``SPLIT``, else
    ``PREC`` on fp32 operands) and partial ``Σ x_flat²`` ``(split, T)``. A chunk of every stream is one
    ``[BT, NP·BD]`` tile (stream ``k // BD``, column ``d0 + k % BD``): one dot per chunk."""
    t = tl.program_id(0) * BT + tl.arange(0, BT)
    tmask = t < T
    t64 = t.to(tl.int64)
    split = tl.program_id(1)
    ND = N * D
    rows = tl.arange(0, RP)
    k = tl.arange(0, NP * BD)
    k_stream = k // BD
    acc = tl.zeros((BT, RP), tl.float32)
    sumsq = tl.zeros((BT,), tl.float32)
    d_start = split * cols_per_split
    d_end = tl.minimum(d_start + cols_per_split, D)
    for d0 in range(d_start, d_end, BD):
        d = d0 + k % BD
        kmask = (k_stream < N) & (d < d_end)
        col = k_stream * D + d
        xt = tl.load(x_ptr + t64[:, None] * ND + col[None, :], mask=tmask[:, None] & kmask[None, :], other=0.0)
        w = tl.load(fn_ptr + rows[None, :] * ND + col[:, None], mask=kmask[:, None] & (rows < R)[None, :], other=0.0)
        xf = xt.to(tl.float32)
        acc = _dot_bf16_fp32(xt, w, acc, EMULATE) if SPLIT else tl.dot(xf, w, acc, input_precision=PREC)
        sumsq += tl.sum(xf * xf, 1)
    row = split.to(tl.int64) * T + t64
    tl.store(proj_ptr + row[:, None] * R + rows[None, :], acc, mask=tmask[:, None] & (rows < R)[None, :])
    tl.store(sumsq_ptr + row, sumsq, mask=tmask)


@triton.jit
def _hc_pre_gates_kernel(
    x_ptr,
    proj_ptr,
    sumsq_ptr,
    scale_ptr,
    base_ptr,
    y_ptr,
    post_ptr,
    comb_ptr,
    mixes_ptr,
    rstd_ptr,
    T,
    D,
    K,
    hc_eps,
    norm_eps,
    cols_per_split,
    N: tl.constexpr,
    NP: tl.constexpr,
    SPLITS: tl.constexpr,
    BT: tl.constexpr,
    BD: tl.constexpr,
):
    """Program (token block, role), after summing the projection's partials. Role 0: the gates and all K
    Sinkhorn steps in registers, storing post and comb, and the mixes and ``r`` for the backward. Role s ≥ 1:
    pre and the collapse ``y = Σ pre_i x_i`` over the s-th column range. (pre needs no Sinkhorn; as separate
    programs the latency-bound Sinkhorn overlaps the bandwidth-bound collapse.)"""
    t = tl.program_id(0) * BT + tl.arange(0, BT)
    tmask = t < T
    t64 = t.to(tl.int64)
    R: tl.constexpr = (2 + N) * N
    iv = tl.arange(0, NP)
    p_pre, p_post, p_comb = _load_mixes(proj_ptr, t64, tmask, T, SPLITS, R, N, NP, BT)
    sumsq = tl.zeros((BT,), tl.float32)
    for sp in tl.static_range(SPLITS):
        sumsq += tl.load(sumsq_ptr + sp * T + t64, mask=tmask, other=0.0)
    r = 1.0 / tl.sqrt(sumsq / (N * D) + norm_eps)
    m_pre = p_pre * r[:, None]
    m_post = p_post * r[:, None]
    m_comb = p_comb * r[:, None, None]
    a_pre, a_post, z = _gate_logits(m_pre, m_post, m_comb, scale_ptr, base_ptr, N, NP)
    role = tl.program_id(1)
    if role == 0:
        r_pre, r_post, r_comb, v_gate, v_comb = _gate_offsets(N, NP)
        m2 = tmask[:, None] & v_gate[None, :]
        row = t64 * R
        tl.store(mixes_ptr + row[:, None] + r_pre[None, :], m_pre, mask=m2)
        tl.store(mixes_ptr + row[:, None] + r_post[None, :], m_post, mask=m2)
        tl.store(mixes_ptr + row[:, None, None] + r_comb[None, :, :], m_comb, mask=tmask[:, None, None] & v_comb)
        tl.store(rstd_ptr + t64, r, mask=tmask)
        tl.store(post_ptr + t64[:, None] * N + iv[None, :], 2.0 * tl.sigmoid(a_post), mask=m2)
        valid = _row_col_valid(N, NP)
        comb = _sinkhorn_fwd(z, valid, K, hc_eps)
        off3 = t64[:, None, None] * (N * N) + iv[None, :, None] * N + iv[None, None, :]
        tl.store(comb_ptr + off3, comb, mask=tmask[:, None, None] & valid)
    else:
        pre = tl.sigmoid(a_pre) + hc_eps
        d_start = (role - 1) * cols_per_split
        d_end = tl.minimum(d_start + cols_per_split, D)
        for d0 in range(d_start, d_end, BD):
            dd = d0 + tl.arange(0, BD)
            y = tl.sum(pre[:, :, None] * _stream_tile(x_ptr, t64, tmask, d0, d_end, N, D, NP, BD), 1)
            tl.store(
                y_ptr + t64[:, None] * D + dd[None, :],
                y.to(y_ptr.dtype.element_ty),
                mask=tmask[:, None] & (dd < d_end)[None, :],
            )


@triton.jit
def _hc_pre_gate_grad_kernel(
    x_ptr,
    gy_ptr,
    mixes_ptr,
    rstd_ptr,
    scale_ptr,
    base_ptr,
    gpost_ptr,
    gcomb_ptr,
    gpre_ptr,
    gparam_ptr,
    gm_r_ptr,
    coef_ptr,
    scratch_ptr,
    T,
    D,
    K,
    hc_eps,
    cols_per_split,
    N: tl.constexpr,
    NP: tl.constexpr,
    BT: tl.constexpr,
    BD: tl.constexpr,
):
    """Program (token block, role); the backward's first launch. Role 0: the post and comb gates' backward
    from the forward's mixes and r (the K Sinkhorn steps differentiated on-chip, their iterates kept in
    ``scratch`` ``(K-1, T, NP, NP)``, the program's own slice, which stays in L2): their rows of
    ``r·∂L/∂mixes`` ``(T, R)`` (fn's row order), their part of the RMS term's coefficient
    ``−(r²/ND)·⟨∂L/∂mixes, mixes⟩`` ``(T,)`` and their entries of this block's ∂L/∂base, ∂L/∂scale sums
    ``gparam[block]`` ``(R + 3,)``. Role s ≥ 1: the partial ∂L/∂pre_i ``= ⟨∂L/∂y, x_i⟩`` over the s-th column
    range, ``(s-1, T, NP)``. (The pre gate needs no Sinkhorn: as separate programs, the latency-bound
    Sinkhorn backward overlaps this bandwidth-bound pass; :func:`_hc_pre_pre_grad_kernel` finishes pre.)"""
    t = tl.program_id(0) * BT + tl.arange(0, BT)
    tmask = t < T
    t64 = t.to(tl.int64)
    iv = tl.arange(0, NP)
    role = tl.program_id(1)
    if role == 0:
        R: tl.constexpr = (2 + N) * N
        _, r_post, r_comb, v_gate, v_comb = _gate_offsets(N, NP)
        valid = _row_col_valid(N, NP)
        m_pre, m_post, m_comb = _load_mixes(mixes_ptr, t64, tmask, T, 1, R, N, NP, BT)
        r = tl.load(rstd_ptr + t64, mask=tmask, other=0.0)
        _, a_post, z = _gate_logits(m_pre, m_post, m_comb, scale_ptr, base_ptr, N, NP)
        gate_mask = tmask[:, None] & v_gate[None, :]
        comb_mask = tmask[:, None, None] & valid
        g_post = tl.load(gpost_ptr + t64[:, None] * N + iv[None, :], mask=gate_mask, other=0.0)
        off3 = t64[:, None, None] * (N * N) + iv[None, :, None] * N + iv[None, None, :]
        g_comb = tl.load(gcomb_ptr + off3, mask=comb_mask, other=0.0)
        sig_post = tl.sigmoid(a_post)
        ga_post = tl.where(gate_mask, g_post * 2.0 * sig_post * (1.0 - sig_post), 0.0)
        off_np = t64[:, None, None] * (NP * NP) + iv[None, :, None] * NP + iv[None, None, :]
        ga_comb = _sinkhorn_bwd(z, g_comb, valid, K, hc_eps, scratch_ptr, off_np, tmask[:, None, None], T * NP * NP)
        s1 = tl.load(scale_ptr + 1)
        s2 = tl.load(scale_ptr + 2)
        # mixes = proj·r with r = (Σx²/ND + eps)^-1/2: ∂/∂x_flat = r·fnᵀ gm − (r²/ND)(gm·mixes)·x_flat
        gm_dot_m = tl.sum(ga_post * s1 * m_post, 1) + tl.sum(tl.sum(ga_comb * s2 * m_comb, 2), 1)
        tl.store(coef_ptr + t64, -(r * r / (N * D)) * gm_dot_m, mask=tmask)
        out = gparam_ptr + tl.program_id(0).to(tl.int64) * (R + 3)  # masked tokens have ga = 0
        tl.store(out + r_post, tl.sum(ga_post, 0), mask=v_gate)
        tl.store(out + r_comb, tl.sum(ga_comb, 0), mask=v_comb)
        tl.store(out + R + 1, tl.sum(tl.sum(ga_post * m_post, 1), 0))
        tl.store(out + R + 2, tl.sum(tl.sum(tl.sum(ga_comb * m_comb, 2), 1), 0))
        row = t64 * R
        tl.store(gm_r_ptr + row[:, None] + r_post[None, :], ga_post * (s1 * r[:, None]), mask=gate_mask)
        tl.store(gm_r_ptr + row[:, None, None] + r_comb[None, :, :], ga_comb * (s2 * r[:, None, None]), mask=comb_mask)
    else:
        d_start = (role - 1) * cols_per_split
        d_end = tl.minimum(d_start + cols_per_split, D)
        acc = tl.zeros((BT, NP, BD), tl.float32)
        for d0 in range(d_start, d_end, BD):
            dd = d0 + tl.arange(0, BD)
            gy = tl.load(
                gy_ptr + t64[:, None] * D + dd[None, :], mask=tmask[:, None] & (dd < d_end)[None, :], other=0.0
            )
            acc += _stream_tile(x_ptr, t64, tmask, d0, d_end, N, D, NP, BD) * gy.to(tl.float32)[:, None, :]
        row = (role - 1).to(tl.int64) * T + t64
        tl.store(gpre_ptr + row[:, None] * NP + iv[None, :], tl.sum(acc, 2), mask=tmask[:, None])


@triton.jit
def _hc_pre_pre_grad_kernel(
    gpre_ptr,
    mixes_ptr,
    rstd_ptr,
    scale_ptr,
    base_ptr,
    gparam_ptr,
    gm_r_ptr,
    coef_ptr,
    pre_ptr,
    T,
    D,
    hc_eps,
    N: tl.constexpr,
    NP: tl.constexpr,
    SPLITS: tl.constexpr,
    BT: tl.constexpr,
):
    """Per token block, the pre gate's backward, from the sum of the ``⟨∂L/∂y, x_i⟩`` partials: its rows of
    ``r·∂L/∂mixes``, its part added to the RMS term's coefficient, its entries of ``gparam[block]``, and pre
    ``(T, N)`` itself (the ∂L/∂x pass's ``pre_i·∂L/∂y`` term)."""
    t = tl.program_id(0) * BT + tl.arange(0, BT)
    tmask = t < T
    t64 = t.to(tl.int64)
    R: tl.constexpr = (2 + N) * N
    r_pre, _, _, v_gate, _ = _gate_offsets(N, NP)
    iv = tl.arange(0, NP)
    gate_mask = tmask[:, None] & v_gate[None, :]
    g_pre = tl.zeros((BT, NP), tl.float32)
    for sp in tl.static_range(SPLITS):
        g_pre += tl.load(gpre_ptr + (sp * T + t64[:, None]) * NP + iv[None, :], mask=gate_mask, other=0.0)
    m_pre = tl.load(mixes_ptr + t64[:, None] * R + r_pre[None, :], mask=gate_mask, other=0.0)
    r = tl.load(rstd_ptr + t64, mask=tmask, other=0.0)
    s0 = tl.load(scale_ptr)
    sig_pre = tl.sigmoid(m_pre * s0 + tl.load(base_ptr + r_pre, mask=v_gate, other=0.0)[None, :])
    ga_pre = tl.where(gate_mask, g_pre * sig_pre * (1.0 - sig_pre), 0.0)
    coef = tl.load(coef_ptr + t64, mask=tmask, other=0.0)
    tl.store(coef_ptr + t64, coef - (r * r / (N * D)) * tl.sum(ga_pre * s0 * m_pre, 1), mask=tmask)
    tl.store(pre_ptr + t64[:, None] * N + iv[None, :], sig_pre + hc_eps, mask=gate_mask)
    out = gparam_ptr + tl.program_id(0).to(tl.int64) * (R + 3)
    tl.store(out + r_pre, tl.sum(ga_pre, 0), mask=v_gate)
    tl.store(out + R, tl.sum(tl.sum(ga_pre * m_pre, 1), 0))
    tl.store(gm_r_ptr + t64[:, None] * R + r_pre[None, :], ga_pre * (s0 * r[:, None]), mask=gate_mask)


@triton.jit
def _hc_pre_input_grad_kernel(
    x_ptr,
    fn_ptr,
    gy_ptr,
    gm_r_ptr,
    coef_ptr,
    pre_ptr,
    groute_ptr,
    gx_ptr,
    gfn_ptr,
    T,
    D,
    tokens_per_split,
    N: tl.constexpr,
    R: tl.constexpr,
    RP: tl.constexpr,
    BT: tl.constexpr,
    BC: tl.constexpr,
    UNIFORM: tl.constexpr,
    ROUTED: tl.constexpr,
    SPLIT: tl.constexpr,
    EMULATE: tl.constexpr,
    PREC: tl.constexpr,
):
    """Program (column block of x_flat, token split): for each token block
    ``∂L/∂x_flat = (r·∂L/∂mixes) @ fn + coef·x_flat + pre_i·gy`` (stored), while accumulating the partial
    ``∂L/∂fn = Σ_t (r·∂L/∂mixes)_t ⊗ x_flat_t`` in registers as its transpose ``x_flatᵀ @ g`` (the long
    column axis as the dot's M), written once as ``gfn[split]`` ``(R, ND)``. ``UNIFORM``: every column block
    lies in one stream (``BC`` divides D), so pre is one value per token and gy one contiguous tile.
    ``ROUTED``: ``groute`` ``(T, N·D)``, the gradient that hc_post sent for the same x, is added (once, in fp32).
    ``SPLIT``: x is bf16 and both dots run on bf16 tensor cores: ∂L/∂fn's exactly (x against g's three bf16
    parts), ∂L/∂x's to fp32 accuracy (the six products of g's and fn's parts that matter)."""
    ND = N * D
    c = tl.program_id(0) * BC + tl.arange(0, BC)
    cmask = c < ND
    stream = (tl.program_id(0) * BC) // D if UNIFORM else c // D
    col_d = c - stream * D
    split = tl.program_id(1)
    rows = tl.arange(0, RP)
    rmask = rows < R
    w = tl.load(fn_ptr + rows[:, None] * ND + c[None, :], mask=rmask[:, None] & cmask[None, :], other=0.0)
    w_hi, w_mid, w_lo = _split_bf16(w)  # once per program (used with SPLIT only)
    acc = tl.zeros((BC, RP), tl.float32)
    t_start = split * tokens_per_split
    t_end = tl.minimum(t_start + tokens_per_split, T)
    for t0 in range(t_start, t_end, BT):
        t = t0 + tl.arange(0, BT)
        tmask = t < t_end
        t64 = t.to(tl.int64)
        m2 = tmask[:, None] & cmask[None, :]
        g = tl.load(gm_r_ptr + t64[:, None] * R + rows[None, :], mask=tmask[:, None] & rmask[None, :], other=0.0)
        x = tl.load(x_ptr + t64[:, None] * ND + c[None, :], mask=m2, other=0.0)
        gy = tl.load(gy_ptr + t64[:, None] * D + col_d[None, :], mask=m2, other=0.0).to(tl.float32)
        if UNIFORM:
            pre = tl.load(pre_ptr + t64 * N + stream, mask=tmask, other=0.0)[:, None]
        else:
            pre = tl.load(pre_ptr + t64[:, None] * N + stream[None, :], mask=m2, other=0.0)
        coef = tl.load(coef_ptr + t64, mask=tmask, other=0.0)
        xf = x.to(tl.float32)
        local = coef[:, None] * xf + pre * gy
        if ROUTED:
            local += tl.load(groute_ptr + t64[:, None] * ND + c[None, :], mask=m2, other=0.0).to(tl.float32)
        if SPLIT:
            g_hi, g_mid, g_lo = _split_bf16(g)
            gx = _dot_split_parts(g_hi, g_mid, g_lo, w_hi, w_mid, w_lo, local, EMULATE)
            x_t = tl.trans(x)
            acc = _dot_bf16(x_t, g_lo, acc, EMULATE)
            acc = _dot_bf16(x_t, g_mid, acc, EMULATE)
            acc = _dot_bf16(x_t, g_hi, acc, EMULATE)
        else:
            gx = tl.dot(g, w, local, input_precision=PREC)
            acc = tl.dot(tl.trans(xf), g, acc, input_precision=PREC)
        tl.store(gx_ptr + t64[:, None] * ND + c[None, :], gx.to(gx_ptr.dtype.element_ty), mask=m2)
    out = gfn_ptr + split.to(tl.int64) * R * ND
    tl.store(out + rows[None, :] * ND + c[:, None], acc, mask=rmask[None, :] & cmask[:, None])


@triton.jit
def _sum_partials_kernel(
    partial_ptr,
    gfn_ptr,
    n,
    splits,
    gparam_ptr,
    gbase_ptr,
    gscale_ptr,
    blocks,
    R: tl.constexpr,
    RW: tl.constexpr,
    RB: tl.constexpr,
    B: tl.constexpr,
):
    """The backward's last sums, in a fixed order (deterministic, unlike atomics). Programs 0 … P-2: ∂L/∂fn
    ``= Σ_split partial[split]`` over ``B`` of its ``n`` elements each. Program P-1: ∂L/∂base and ∂L/∂scale,
    the column sums of the per-token-block ``gparam`` ``(blocks, R + 3)`` (``RW`` ≥ R + 3, a power of two)."""
    pid = tl.program_id(0)
    if pid < tl.num_programs(0) - 1:
        i = pid * B + tl.arange(0, B)
        m = i < n
        acc = tl.zeros((B,), tl.float32)
        src = partial_ptr + i
        for _ in range(splits):
            acc += tl.load(src, mask=m, other=0.0)
            src += n  # pointer arithmetic is 64-bit
        tl.store(gfn_ptr + i, acc, mask=m)
    else:
        c = tl.arange(0, RW)
        cmask = c < R + 3
        acc2 = tl.zeros((RB, RW), tl.float32)
        for b0 in range(0, blocks, RB):
            b = b0 + tl.arange(0, RB)
            m2 = (b < blocks)[:, None] & cmask[None, :]
            acc2 += tl.load(gparam_ptr + b.to(tl.int64)[:, None] * (R + 3) + c[None, :], mask=m2, other=0.0)
        total = tl.sum(acc2, 0)
        tl.store(gbase_ptr + c, total, mask=c < R)
        tl.store(gscale_ptr + (c - R), total, mask=(c >= R) & cmask)


# ── hc_post ────────────────────────────────────────────────────────────────────────────────────
@triton.jit
def _hc_post_fwd_kernel(
    f_ptr,
    x_ptr,
    post_ptr,
    comb_ptr,
    out_ptr,
    T,
    D,
    N: tl.constexpr,
    NP: tl.constexpr,
    BT: tl.constexpr,
    BD: tl.constexpr,
):
    """``out[o] = post[o]·f + Σ_i comb[i, o]·x[i]`` for a (token block, column block) tile."""
    t = tl.program_id(0) * BT + tl.arange(0, BT)
    tmask = t < T
    t64 = t.to(tl.int64)
    dd = tl.program_id(1) * BD + tl.arange(0, BD)
    m2 = tmask[:, None] & (dd[None, :] < D)
    ov = tl.arange(0, NP)
    omask = tmask[:, None] & (ov[None, :] < N)
    post = tl.load(post_ptr + t64[:, None] * N + ov[None, :], mask=omask, other=0.0)
    f = tl.load(f_ptr + t64[:, None] * D + dd[None, :], mask=m2, other=0.0).to(tl.float32)
    acc = post[:, :, None] * f[:, None, :]
    for i in tl.static_range(N):
        c_i = tl.load(comb_ptr + t64[:, None] * (N * N) + i * N + ov[None, :], mask=omask, other=0.0)
        xi = tl.load(x_ptr + t64[:, None] * (N * D) + i * D + dd[None, :], mask=m2, other=0.0).to(tl.float32)
        acc += c_i[:, :, None] * xi[:, None, :]
    off = t64[:, None, None] * (N * D) + ov[None, :, None] * D + dd[None, None, :]
    tl.store(out_ptr + off, acc.to(out_ptr.dtype.element_ty), mask=m2[:, None, :] & (ov[None, :, None] < N))


@triton.jit
def _hc_post_bwd_kernel(
    gout_ptr,
    f_ptr,
    x_ptr,
    post_ptr,
    comb_ptr,
    gf_ptr,
    gx_ptr,
    gpost_ptr,
    gcomb_ptr,
    T,
    D,
    N: tl.constexpr,
    NP: tl.constexpr,
    BT: tl.constexpr,
    BD: tl.constexpr,
):
    """∂L/∂f ``= Σ_o post[o]·g[o]``, ∂L/∂x[i] ``= Σ_o comb[i, o]·g[o]``, ∂L/∂post[o] ``= ⟨g[o], f⟩``,
    ∂L/∂comb[i, o] ``= ⟨x[i], g[o]⟩``, one token block per program, looping over the columns."""
    t = tl.program_id(0) * BT + tl.arange(0, BT)
    tmask = t < T
    t64 = t.to(tl.int64)
    ov = tl.arange(0, NP)
    omask = tmask[:, None] & (ov[None, :] < N)
    post = tl.load(post_ptr + t64[:, None] * N + ov[None, :], mask=omask, other=0.0)
    g_post = tl.zeros((BT, NP), tl.float32)
    g_comb = tl.zeros((BT, NP, NP), tl.float32)
    for d0 in range(0, D, BD):
        dd = d0 + tl.arange(0, BD)
        m2 = tmask[:, None] & (dd[None, :] < D)
        m3 = m2[:, None, :] & (ov[None, :, None] < N)
        off = t64[:, None, None] * (N * D) + ov[None, :, None] * D + dd[None, None, :]
        g = tl.load(gout_ptr + off, mask=m3, other=0.0).to(tl.float32)
        f = tl.load(f_ptr + t64[:, None] * D + dd[None, :], mask=m2, other=0.0).to(tl.float32)
        gf = tl.sum(post[:, :, None] * g, 1)
        tl.store(gf_ptr + t64[:, None] * D + dd[None, :], gf.to(gf_ptr.dtype.element_ty), mask=m2)
        g_post += tl.sum(g * f[:, None, :], 2)
        for i in tl.static_range(N):
            c_i = tl.load(comb_ptr + t64[:, None] * (N * N) + i * N + ov[None, :], mask=omask, other=0.0)
            xi = tl.load(x_ptr + t64[:, None] * (N * D) + i * D + dd[None, :], mask=m2, other=0.0).to(tl.float32)
            gx = tl.sum(c_i[:, :, None] * g, 1)
            tl.store(gx_ptr + t64[:, None] * (N * D) + i * D + dd[None, :], gx.to(gx_ptr.dtype.element_ty), mask=m2)
            g_comb += tl.where(ov[None, :, None] == i, tl.sum(xi[:, None, :] * g, 2)[:, None, :], 0.0)
    tl.store(gpost_ptr + t64[:, None] * N + ov[None, :], g_post, mask=omask)
    off3 = t64[:, None, None] * (N * N) + ov[None, :, None] * N + ov[None, None, :]
    tl.store(gcomb_ptr + off3, g_comb, mask=tmask[:, None, None] & (ov[None, :, None] < N) & (ov[None, None, :] < N))


# ── launchers ──────────────────────────────────────────────────────────────────────────────────
def _split_range(total: int, splits: int, block: int) -> tuple[int, int]:
    """Cut ``total`` into at most ``splits`` ranges of whole blocks: ``(length of a range, number of ranges)``."""
    splits = max(1, min(splits, triton.cdiv(total, block)))
    length = triton.cdiv(triton.cdiv(total, splits), block) * block
    return length, triton.cdiv(total, length)


@functools.cache
def _sm_count(device: torch.device) -> int:
    """Streaming multiprocessors of ``device`` (4 under the interpreter), looked up once: the launchers run
    every step."""
    return torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 4


def _interpreted() -> bool:
    """Whether the kernels run in Triton's interpreter (the CPU tests), which has no bf16 arithmetic."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def _bf16_split(x: torch.Tensor) -> bool:
    """Whether the dots against x run on bf16 tensor cores with the fp32 factor split in three (bf16 x only)."""
    return BF16_SPLIT and x.dtype == torch.bfloat16


def hc_pre_forward(
    x: torch.Tensor, fn: torch.Tensor, scale: torch.Tensor, base: torch.Tensor, K: int, hc_eps: float, norm_eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(T, N, D)`` streams → ``y`` ``(T, D)`` in x's dtype, ``post`` ``(T, N)``, ``comb`` ``(T, N, N)`` fp32,
    and what the backward needs besides x: the mixes ``(T, (2+N)·N)`` (fn's row order) and ``r`` ``(T,)``."""
    T, N, D = x.shape
    R = (2 + N) * N
    dev = x.device
    bt, bd, warps, stages = (
        (*PROJ_FP32, 1) if x.element_size() == 4 else (PROJ_BLOCK_T, PROJ_BLOCK_D, PROJ_WARPS, PROJ_STAGES)
    )
    cols, splits = _split_range(D, PROJ_SPLITS, bd)
    proj = _new((splits, T, R), torch.float32, dev)
    sumsq = _new((splits, T), torch.float32, dev)
    _projection_kernel[(triton.cdiv(T, bt), splits)](
        x,
        fn,
        proj,
        sumsq,
        T,
        D,
        cols,
        N=N,
        NP=padded_streams(N),
        R=R,
        RP=generator_rows_padded(N),
        BT=bt,
        BD=bd,
        SPLIT=_bf16_split(x),
        EMULATE=_interpreted(),
        PREC=DOT_PRECISION,
        num_warps=warps,
        num_stages=stages,
    )
    y = _new((T, D), x.dtype, dev)
    post = _new((T, N), torch.float32, dev)
    comb = _new((T, N, N), torch.float32, dev)
    mixes = _new((T, R), torch.float32, dev)
    rstd = _new((T,), torch.float32, dev)
    cols, collapse_splits = _split_range(D, COLLAPSE_SPLITS, PRE_BLOCK_D)
    _hc_pre_gates_kernel[(triton.cdiv(T, PRE_BLOCK_T), 1 + collapse_splits)](
        x,
        proj,
        sumsq,
        scale,
        base,
        y,
        post,
        comb,
        mixes,
        rstd,
        T,
        D,
        K,
        hc_eps,
        norm_eps,
        cols,
        N=N,
        NP=padded_streams(N),
        SPLITS=splits,
        BT=PRE_BLOCK_T,
        BD=PRE_BLOCK_D,
        num_warps=GATE_WARPS,
    )
    return y, post, comb, mixes, rstd


def hc_pre_backward(
    x: torch.Tensor,
    fn: torch.Tensor,
    scale: torch.Tensor,
    base: torch.Tensor,
    mixes: torch.Tensor,
    rstd: torch.Tensor,
    grad_y: torch.Tensor,
    grad_post: torch.Tensor,
    grad_comb: torch.Tensor,
    K: int,
    hc_eps: float,
    grad_route: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of ``hc_pre`` w.r.t. ``(x, fn, scale, base)`` given those of ``(y, post, comb)`` and the
    forward's ``mixes`` and ``rstd``. ``grad_route`` ``(T, N, D)``: another gradient of x (hc_post's, see
    :func:`mhc_mup.kernels.fused.hc_pre_routed`), added to ∂L/∂x in its own kernel instead of in a separate sum."""
    gparam, gm_r, coef, pre = _gate_and_pre_grads(x, mixes, rstd, scale, base, grad_y, grad_post, grad_comb, K, hc_eps)
    grad_x, partial = _input_and_generator_grads(x, fn, grad_y, gm_r, coef, pre, grad_route)
    grad_fn, grad_scale, grad_base = _sum_partials(partial, gparam, fn.shape)
    return grad_x, grad_fn, grad_scale, grad_base


def _gate_and_pre_grads(
    x: torch.Tensor,
    mixes: torch.Tensor,
    rstd: torch.Tensor,
    scale: torch.Tensor,
    base: torch.Tensor,
    grad_y: torch.Tensor,
    grad_post: torch.Tensor,
    grad_comb: torch.Tensor,
    K: int,
    hc_eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`hc_pre_backward`'s first two kernels, back through the gates and the Sinkhorn iterations to the
    mixes: ``(gparam, gm_r, coef, pre)``, per token block the partial gradients of ``(base, scale)``
    ``(blocks, R + 3)``, ``r·∂L/∂mixes`` ``(T, R)``, the RMS term's coefficient ``(T,)`` and the pre gates
    ``(T, N)``, all fp32."""
    T, N, D = x.shape
    R = mixes.shape[-1]
    NP = padded_streams(N)
    dev = x.device
    cols, splits = _split_range(D, GY_SPLITS, GY_BLOCK_D)
    blocks = triton.cdiv(T, PRE_BLOCK_T)
    gpre = _new((splits, T, NP), torch.float32, dev)
    gparam = _new((blocks, R + 3), torch.float32, dev)
    gm_r = _new((T, R), torch.float32, dev)
    coef = _new((T,), torch.float32, dev)
    pre = _new((T, N), torch.float32, dev)
    scratch = torch.empty((max(K - 1, 1), T, NP, NP), dtype=torch.float32, device=dev)  # written before read
    _hc_pre_gate_grad_kernel[(blocks, 1 + splits)](
        x,
        grad_y,
        mixes,
        rstd,
        scale,
        base,
        grad_post,
        grad_comb,
        gpre,
        gparam,
        gm_r,
        coef,
        scratch,
        T,
        D,
        K,
        hc_eps,
        cols,
        N=N,
        NP=NP,
        BT=PRE_BLOCK_T,
        BD=GY_BLOCK_D,
        num_warps=GATE_WARPS,
    )
    _hc_pre_pre_grad_kernel[(blocks,)](
        gpre,
        mixes,
        rstd,
        scale,
        base,
        gparam,
        gm_r,
        coef,
        pre,
        T,
        D,
        hc_eps,
        N=N,
        NP=NP,
        SPLITS=splits,
        BT=PRE_BLOCK_T,
        num_warps=GATE_WARPS,
    )
    return gparam, gm_r, coef, pre


def _input_and_generator_grads(
    x: torch.Tensor,
    fn: torch.Tensor,
    grad_y: torch.Tensor,
    gm_r: torch.Tensor,
    coef: torch.Tensor,
    pre: torch.Tensor,
    grad_route: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`hc_pre_backward`'s third kernel: ``grad_x`` (``x``'s shape and dtype, ``grad_route`` added where
    given) and the generator's gradient in fp32 partial sums over token splits ``(splits, R, n_s·d)``."""
    T, N, D = x.shape
    R, ND = fn.shape
    dev = x.device
    bt, bc, warps, stages = (
        GRAD_FP32 if x.element_size() == 4 else (GRAD_BLOCK_T, GRAD_BLOCK_C, GRAD_WARPS, GRAD_STAGES)
    )
    col_blocks = triton.cdiv(ND, bc)
    n_sm = _sm_count(dev)
    tokens_per_split, token_splits = _split_range(T, triton.cdiv(GRAD_PROGRAMS_PER_SM * n_sm, col_blocks), bt)
    grad_x = _new(x.shape, x.dtype, dev)
    partial = _new((token_splits, R, ND), torch.float32, dev)
    _hc_pre_input_grad_kernel[(col_blocks, token_splits)](
        x,
        fn,
        grad_y,
        gm_r,
        coef,
        pre,
        grad_x if grad_route is None else grad_route,  # (not read unless ROUTED)
        grad_x,
        partial,
        T,
        D,
        tokens_per_split,
        N=N,
        R=R,
        RP=generator_rows_padded(N),
        BT=bt,
        BC=bc,
        UNIFORM=D % bc == 0,
        ROUTED=grad_route is not None,
        SPLIT=_bf16_split(x),
        EMULATE=_interpreted(),
        PREC=DOT_PRECISION,
        num_warps=warps,
        num_stages=stages,
    )
    return grad_x, partial


def _sum_partials(
    partial: torch.Tensor, gparam: torch.Tensor, fn_shape: torch.Size
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`hc_pre_backward`'s last kernel: ``(grad_fn, grad_scale, grad_base)``, fp32, the sums of the
    generator's token-split partials ``(splits, R, n_s·d)`` and of the token blocks' ``(blocks, R + 3)``."""
    R, ND = fn_shape
    dev = partial.device
    grad_fn = _new((R, ND), torch.float32, dev)
    grad_base = _new((R,), torch.float32, dev)
    grad_scale = _new((3,), torch.float32, dev)
    n = R * ND
    _sum_partials_kernel[(triton.cdiv(n, SUM_BLOCK) + 1,)](
        partial,
        grad_fn,
        n,
        partial.shape[0],
        gparam,
        grad_base,
        grad_scale,
        gparam.shape[0],
        R=R,
        RW=triton.next_power_of_2(R + 3),
        RB=SUM_ROWS,
        B=SUM_BLOCK,
        num_warps=SUM_WARPS,
    )
    return grad_fn, grad_scale, grad_base


def hc_post_forward(branch_out: torch.Tensor, x: torch.Tensor, post: torch.Tensor, comb: torch.Tensor) -> torch.Tensor:
    """``(T, D)`` branch output, ``(T, N, D)`` streams → ``(T, N, D)`` in x's dtype."""
    T, N, D = x.shape
    out = _new(x.shape, x.dtype, x.device)
    grid = (triton.cdiv(T, POST_BLOCK_T), triton.cdiv(D, POST_BLOCK_D))
    _hc_post_fwd_kernel[grid](
        branch_out,
        x,
        post,
        comb,
        out,
        T,
        D,
        N=N,
        NP=padded_streams(N),
        BT=POST_BLOCK_T,
        BD=POST_BLOCK_D,
        num_warps=POST_WARPS,
    )
    return out


def hc_post_backward(
    grad_out: torch.Tensor, branch_out: torch.Tensor, x: torch.Tensor, post: torch.Tensor, comb: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of ``hc_post`` w.r.t. ``(branch_out, x, post, comb)``."""
    T, N, D = x.shape
    grad_f = _new(branch_out.shape, branch_out.dtype, x.device)
    grad_x = _new(x.shape, x.dtype, x.device)
    grad_post = _new((T, N), torch.float32, x.device)
    grad_comb = _new((T, N, N), torch.float32, x.device)
    _hc_post_bwd_kernel[(triton.cdiv(T, POST_BWD_BLOCK_T),)](
        grad_out,
        branch_out,
        x,
        post,
        comb,
        grad_f,
        grad_x,
        grad_post,
        grad_comb,
        T,
        D,
        N=N,
        NP=padded_streams(N),
        BT=POST_BWD_BLOCK_T,
        BD=POST_BWD_BLOCK_D,
        num_warps=POST_BWD_WARPS,
    )
    return grad_f, grad_x, grad_post, grad_comb
