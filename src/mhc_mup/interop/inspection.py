"""``mhc-mup inspect``: what a checkpoint's mHC parameters say, per sublayer and across depth.

Per sublayer (attention and FFN of every layer, then the head):

* ``fn`` per gate block (pre rows ``:n``, post ``n:2n``, comb ``2n:``): row-norm mean / min / max and the
  block's spectral norm ``‖fn_block‖₂`` (the ``‖W_comb‖₂`` factor of diagnostic 4's chain);
* the three ``scale`` values;
* the static gates, i.e. the gates at zero generated logits: ``mean σ(b_pre) + hc_eps``,
  ``mean 2σ(b_post)`` and the static comb ``C₀ = Sinkhorn_K(b_comb)`` with ``‖C₀‖₂``, ``‖C₀ − I‖_F``,
  ``‖C₀ − 11ᵀ/n‖_F`` and its ε_K;
* diagnostic 4, ``‖∂C/∂x‖₂·‖x‖``, ``‖∂pre/∂x‖₂·‖x‖``, ``‖∂post/∂x‖₂·‖x‖`` (means), on synthetic states
  ``x ~ N(0, 1)`` ``(n_s, d)`` at the checkpoint's width — the same states for every sublayer;
* across depth: ``σ₂(C₀¹ C₀² ⋯ C₀ᵐ)`` after each sublayer ``m`` — the residual after ``m`` sublayers is
  mixed by ``(C₀¹ ⋯ C₀ᵐ)ᵀ`` (input-first combs compose left to right), its top singular value is 1 and
  the second says how much of the stream-to-stream difference survives: fast decay = streams mix fast.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mhc_mup._io import csv_text
from mhc_mup.diagnostics.measures import sinkhorn_error
from mhc_mup.interop.adapter_diagnostics import autograd_jacobians, top_singular_values
from mhc_mup.interop.adapters import V4HeadParams, V4Params
from mhc_mup.interop.checkpoint import HCLayout, HCSettings, iter_sublayers, locate, read_head, settings
from mhc_mup.mhc.ops import sinkhorn_knopp
from mhc_mup.reporting.render import png_bytes
from mhc_mup.reporting.style import OKABE_ITO

if TYPE_CHECKING:
    from matplotlib.axes import Axes

BLOCKS = ("pre", "post", "comb")
COLUMNS: tuple[str, ...] = (
    "position",
    "layer",
    "sublayer",
    *(f"{b}_{stat}" for b in BLOCKS for stat in ("row_norm_mean", "row_norm_min", "row_norm_max", "fn_norm2")),
    "scale_pre",
    "scale_post",
    "scale_comb",
    "static_pre_mean",
    "static_post_mean",
    "static_comb_norm2",
    "static_comb_dist_identity",
    "static_comb_dist_uniform",
    "static_comb_eps_K",
    "dc_x_mean",
    "dp_x_mean",
    "dq_x_mean",
    "depth_comb_sigma2",
)
"""Columns of ``inspect.csv``: one row per sublayer in forward order, then the head (``sublayer = head``,
``position = n_layers``; only its pre block, scale, static pre and ``dp_x_mean`` apply, the rest empty).
``position`` is ``layer`` for attn and ``layer + 0.5`` for ffn."""


@dataclass
class Inspection:
    """Rows of ``inspect.csv`` and what produced them."""

    layout: HCLayout
    settings: HCSettings
    rows: list[dict[str, float | int | str]]
    samples: int
    seed: int
    seconds: float

    @property
    def sublayer_rows(self) -> list[dict]:
        return [r for r in self.rows if r["sublayer"] != "head"]

    @property
    def head_row(self) -> dict | None:
        return next((r for r in self.rows if r["sublayer"] == "head"), None)

    def summary(self) -> dict:
        """Checkpoint-level facts for ``inspect.json``."""
        sub = self.sublayer_rows
        col = lambda key: [float(r[key]) for r in sub]  # noqa: E731
        return {
            "checkpoint": str(self.layout.path),
            "naming": self.layout.naming,
            "n_layers": self.layout.n_layers,
            "n_s": self.layout.n_s,
            "d": self.layout.d,
            "K": self.settings.K,
            "hc_eps": self.settings.hc_eps,
            "norm_eps": self.settings.norm_eps,
            "settings_source": self.settings.source,
            "hc_tensors_read": len(self.layout.names),
            "hc_parameters": self.hc_parameters,
            "samples": self.samples,
            "seed": self.seed,
            "depth_comb_sigma2_final": col("depth_comb_sigma2")[-1],
            "dc_x_mean_median_over_sublayers": float(np.median(col("dc_x_mean"))),
            "dc_x_mean_max_over_sublayers": float(np.max(col("dc_x_mean"))),
            "comb_fn_norm2_median_over_sublayers": float(np.median(col("comb_fn_norm2"))),
            "seconds": self.seconds,
        }

    @property
    def hc_parameters(self) -> int:
        """Number of mHC parameters read: ``2L·((2+n)n·(n·d + 1) + 3)`` plus the head's ``n·n·d + n + 1``."""
        n, d = self.layout.n_s, self.layout.d
        rows = (2 + n) * n
        total = 2 * self.layout.n_layers * (rows * (n * d + 1) + 3)
        return total + (n * n * d + n + 1 if self.layout.head_names else 0)


def _block_stats(fn: torch.Tensor, n: int, blocks: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    spans = {"pre": (0, n), "post": (n, 2 * n), "comb": (2 * n, fn.shape[0])}
    for b in blocks:
        block = fn[slice(*spans[b])].double()
        rows = block.norm(dim=1)
        out[f"{b}_row_norm_mean"] = float(rows.mean())
        out[f"{b}_row_norm_min"] = float(rows.min())
        out[f"{b}_row_norm_max"] = float(rows.max())
        out[f"{b}_fn_norm2"] = float(top_singular_values(block))  # from the small Gram matrix: no wide SVD
    return out


def inspect_checkpoint(
    path: str | Path,
    *,
    samples: int = 32,
    seed: int = 0,
    K: int | None = None,
    hc_eps: float | None = None,
    norm_eps: float | None = None,
) -> Inspection:
    """Inspect the checkpoint at ``path`` (file, index or directory); see the module docstring for the
    quantities. Raises :class:`~mhc_mup.interop.checkpoint.CheckpointError` naming the first bad file or tensor."""
    if samples < 2:
        raise ValueError(f"samples must be >= 2, got {samples}")
    t0 = time.perf_counter()
    layout = locate(path)
    hc = settings(layout, K, hc_eps, norm_eps)
    n = layout.n_s
    states = torch.randn(samples, n, layout.d, generator=torch.Generator().manual_seed(seed))
    product = torch.eye(n, dtype=torch.float64)  # the static comb matrices' product down the depth
    rows: list[dict] = []
    for layer, sub, params in iter_sublayers(layout, hc):
        row, product = _sublayer_row(layer, sub, params, hc, states, product)
        rows.append(row)
    head = read_head(layout, hc)
    if head is not None:
        rows.append(_head_row(head, float(layout.n_layers), hc, states))
    return Inspection(layout, hc, rows, samples, seed, time.perf_counter() - t0)


def _sublayer_row(
    layer: int, sub: str, params: V4Params, hc: HCSettings, states: torch.Tensor, product: torch.Tensor
) -> tuple[dict, torch.Tensor]:
    """One sublayer's row of :data:`COLUMNS` from its mHC ``params`` and the random ``states`` ``(S, n, d)``, and
    ``product`` ``(n, n)`` times this sublayer's static comb matrix (whose σ₂ the row reports)."""
    n = states.shape[1]
    fn, base, scale = params.fn, params.base.double(), params.scale.double()
    comb0 = sinkhorn_knopp(base[2 * n :].view(n, n), hc.K, hc.hc_eps)
    product = product @ comb0
    eye = torch.eye(n, dtype=torch.float64)
    x_norm = states.flatten(-2).norm(dim=-1)
    norms = params.gate_jacobian_norms(states)
    row = {
        "position": layer + (0.5 if sub == "ffn" else 0.0),
        "layer": layer,
        "sublayer": sub,
        **_block_stats(fn, n, BLOCKS),
        "scale_pre": float(scale[0]),
        "scale_post": float(scale[1]),
        "scale_comb": float(scale[2]),
        "static_pre_mean": float((torch.sigmoid(base[:n]) + hc.hc_eps).mean()),
        "static_post_mean": float((2.0 * torch.sigmoid(base[n : 2 * n])).mean()),
        "static_comb_norm2": float(torch.linalg.matrix_norm(comb0, ord=2)),
        "static_comb_dist_identity": float((comb0 - eye).norm()),
        "static_comb_dist_uniform": float((comb0 - torch.full_like(eye, 1.0 / n)).norm()),
        "static_comb_eps_K": float(sinkhorn_error(comb0)),
        "dc_x_mean": float((norms.comb * x_norm).mean()),
        "dp_x_mean": float((norms.pre * x_norm).mean()),
        "dq_x_mean": float((norms.post * x_norm).mean()),
        "depth_comb_sigma2": float(torch.linalg.svdvals(product)[1]),
    }
    return row, product


def _head_row(head: V4HeadParams, position: float, hc: HCSettings, states: torch.Tensor) -> dict:
    """The output head's row: its pre gate only (the head mixes no streams)."""
    n = states.shape[1]
    x_norm = states.flatten(-2).norm(dim=-1)
    J = autograd_jacobians(head.pre, states)
    return {
        "position": position,
        "layer": "",
        "sublayer": "head",
        **_block_stats(head.fn, n, ("pre",)),
        "scale_pre": float(head.scale.reshape(())),
        "static_pre_mean": float((torch.sigmoid(head.base.double()) + hc.hc_eps).mean()),
        "dp_x_mean": float((top_singular_values(J) * x_norm).mean()),
    }


# ── outputs ────────────────────────────────────────────────────────────────────────────────────
def inspection_csv(inspection: Inspection) -> str:
    """``inspect.csv``: :data:`COLUMNS`, one row per sublayer then the head; inapplicable cells empty."""
    return csv_text(inspection.rows, COLUMNS)


SIGMA2_FLOOR = 1e-15  # σ₂ of a rank-one product is fp64 round-off (~1e-17): drawn at this floor
# each gate's colour (and two more) from the package's Okabe–Ito palette: blue, orange, green, pink, black
COLOURS = {"pre": OKABE_ITO[0], "post": OKABE_ITO[4], "comb": OKABE_ITO[2], "extra": OKABE_ITO[3], "grey": OKABE_ITO[6]}


def figure_png(inspection: Inspection, dpi: int = 110) -> bytes:
    """A 2×3 figure of the per-sublayer quantities against layer index, as PNG bytes (headless Agg).
    Attention sublayers are circles on solid lines, FFN sublayers squares on dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 8.5), dpi=dpi, layout="constrained")
    axes = fig.subplots(2, 3)
    lay = inspection.layout
    fig.suptitle(
        f"{lay.path.name}: mHC parameters across depth  (n_s = {lay.n_s}, d = {lay.d}, {lay.n_layers} layers, "
        f"K = {inspection.settings.K})",
        fontsize=12,
    )
    for ax, (title, keys, log) in zip(axes.flat, _PANELS, strict=True):
        for key, label, colour in keys:
            _plot_quantity(ax, inspection.sublayer_rows, key, label, COLOURS[colour], log)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("layer")
        if log and ax.has_data():
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, ncol=1 if len(keys) < 2 else 2)
    return png_bytes(fig, dpi=fig.dpi)


# each panel of figure_png: its title, its series (a sublayer_rows key, the label, a COLOURS key), log y-axis
_PANELS: tuple[tuple[str, list[tuple[str, str, str]], bool], ...] = (
    ("fn row norm (mean over the block's rows)", [(f"{b}_row_norm_mean", b, b) for b in BLOCKS], False),
    ("‖fn block‖₂ (spectral norm)", [(f"{b}_fn_norm2", b, b) for b in BLOCKS], False),
    ("scale", [(f"scale_{b}", b, b) for b in BLOCKS], False),
    (
        "static comb C₀ = Sinkhorn(base)",
        [
            ("static_comb_dist_identity", "‖C₀ − I‖_F", "comb"),
            ("static_comb_dist_uniform", "‖C₀ − 11ᵀ/n‖_F", "extra"),
            ("static_comb_norm2", "‖C₀‖₂", "grey"),
        ],
        False,
    ),
    (
        "dynamic sensitivity (diagnostic 4), x ~ N(0, 1)",
        [
            ("dc_x_mean", "‖∂C/∂x‖·‖x‖", "comb"),
            ("dp_x_mean", "‖∂pre/∂x‖·‖x‖", "pre"),
            ("dq_x_mean", "‖∂post/∂x‖·‖x‖", "post"),
        ],
        True,
    ),
    (
        "σ₂ of the static comb product up to this sublayer",
        [("depth_comb_sigma2", "σ₂(C₀¹⋯C₀ᵐ), m = 1 … sublayer (ffn at layer + ½)", "comb")],
        True,
    ),
)
_SUBLAYER_STYLES = {"attn": ("o", "-"), "ffn": ("s", "--")}  # marker, line


def _plot_quantity(ax: Axes, rows: list[dict], key: str, label: str, colour: str, log: bool) -> None:
    """One quantity of ``rows`` against layer: a line per sublayer kind, or for the cumulative
    ``depth_comb_sigma2`` one line over the sublayers in forward order, floored at :data:`SIGMA2_FLOOR`."""
    if key == "depth_comb_sigma2":
        y = np.asarray([r[key] for r in rows], dtype=float)
        x = [r["position"] for r in rows]
        ax.plot(x, np.maximum(y, SIGMA2_FLOOR), "-", marker=".", color=colour, label=label)
        ax.set_ylim(SIGMA2_FLOOR / 3, 1.5)
        if np.any(y < SIGMA2_FLOOR):
            ax.axhline(SIGMA2_FLOOR, color=COLOURS["grey"], lw=0.8, ls=":")
            ax.text(x[0], SIGMA2_FLOOR * 1.6, f"≤ {SIGMA2_FLOOR:.0e}: rank one up to round-off", fontsize=8)
        return
    for sub, (marker, line) in _SUBLAYER_STYLES.items():
        pts = [(r["layer"], r[key]) for r in rows if r["sublayer"] == sub]
        if not pts:
            continue
        layers, values = zip(*pts, strict=True)
        y = np.asarray(values, dtype=float)
        if log:
            y = np.where(y > 0, y, np.nan)
        ax.plot(layers, y, line, marker=marker, ms=4, color=colour, label=f"{label} ({sub})")
