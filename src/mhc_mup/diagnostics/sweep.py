"""The width sweep: every diagnostic at every width, then a power-law fit for every metric.

Sampling design (the seed's): at each width one parameter draw and ``state_tokens`` residual
states feed diagnostics 1, 2 and 6; diagnostics 4 and 5 draw fresh parameters and a fresh state
per sample; diagnostic 3 is width-independent (``Z ~ N(0, 1)``, the same draws at every K).
Randomness comes from generators seeded by ``(seed, width, diagnostic)``: a width's numbers do
not depend on which other widths are in the sweep, and the same config gives the same numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from mhc_mup._device import resolve_device
from mhc_mup.diagnostics import measures as dg
from mhc_mup.diagnostics.budget import check_memory
from mhc_mup.diagnostics.config import DTYPE_NAMES, SweepConfig
from mhc_mup.diagnostics.summaries import DIAGNOSTICS, REDUCERS, SUMMARY_KEYS, summarize
from mhc_mup.mhc.jacobians import sinkhorn_jacobians
from mhc_mup.mhc.ops import hc_weights
from mhc_mup.stats.fitting import PowerLawFit, fit_power_laws

DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}
WIDTH_DIAGNOSTICS = (
    "sinkhorn_error",
    "spectral_norm",
    "dynamic_sensitivity",
    "chain_decomposition",
    "logit_update",
    "gate_stats",
)
_STREAM_IDS = {"state": 1, "quotient": 3, "dynamic_sensitivity": 4, "logit_update": 5, "gradient_directions": 6}


def make_generator(seed: int, width: int, stream: str, device: torch.device) -> torch.Generator:
    """A generator for one (seed, width, diagnostic) stream, independent of all others."""
    state = np.random.SeedSequence([seed, width, _STREAM_IDS[stream]]).generate_state(1, dtype=np.uint64)[0]
    gen = torch.Generator(device=device)
    gen.manual_seed(int(state) & ((1 << 63) - 1))
    return gen


Samples = dict[str, np.ndarray]


@dataclass
class SweepResult:
    """Per-sample values of every diagnostic, their seed-style summaries and the scaling fits."""

    config: SweepConfig
    samples: dict[int, dict[str, Samples]]  # width → diagnostic → sample name → values
    quotient: dict[int, Samples]  # K → sample name → values (width independent)
    fits: dict[tuple[str, str], PowerLawFit]  # (diagnostic, key) → fit
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def widths(self) -> list[int]:
        return sorted(self.samples)

    @property
    def name(self) -> str:
        return self.config.parameterization.name

    @property
    def description(self) -> str:
        return self.config.parameterization.description

    def summary(self, width: int) -> dict[str, dict]:
        """The seed's nested layout for one width (diagnostic → key → value)."""
        out: dict[str, dict] = {}
        for diag in DIAGNOSTICS:
            if diag == "quotient_jacobian":
                out[diag] = {f"K={k}": summarize(diag, s) for k, s in self.quotient.items()}
            else:
                out[diag] = summarize(diag, self.samples[width][diag])
        return out

    def n_samples(self, diagnostic: str) -> int:
        return {
            "sinkhorn_error": self.config.sampling.state_tokens,
            "spectral_norm": self.config.sampling.state_tokens,
            "gate_stats": self.config.sampling.state_tokens,
            "quotient_jacobian": self.config.sampling.quotient_samples,
            "dynamic_sensitivity": self.config.sampling.sensitivity_samples,
            "chain_decomposition": self.config.sampling.sensitivity_samples,
            "logit_update": self.config.sampling.update_samples,
        }[diagnostic]

    def fit(self, diagnostic: str, key: str) -> PowerLawFit:
        return self.fits[(diagnostic, key)]


ProgressFn = Callable[[str, int, int], None]  # (description, done, total)


def _state_diagnostics(cfg: SweepConfig, width: int, dev: torch.device, dtype: torch.dtype) -> dict:
    mhc, n_s = cfg.shape, cfg.shape.n_s
    gen = make_generator(cfg.seed, width, "state", dev)
    init = cfg.parameterization.init(n_s, width)
    fn = init.sample_fn(n_s, n_s * width, generator=gen, dtype=dtype, device=dev)
    x = torch.randn(cfg.sampling.state_tokens, n_s, width, generator=gen, dtype=dtype, device=dev)
    pre, post, comb = hc_weights(
        x,
        fn,
        init.scale_tensor(dtype, dev),
        init.base_tensor(n_s, dtype, dev),
        mhc.K,
        mhc.hc_eps,
        mhc.norm_eps,
    )
    spectral = dg.spectral_stats(comb)
    gates = dg.gate_stats(pre, post)
    return {
        "sinkhorn_error": {"eps_K": dg.sinkhorn_error(comb)},
        "spectral_norm": spectral._asdict(),
        "gate_stats": gates._asdict(),
    }


def _chunks(total: int, per_sample: int, budget: int) -> Iterator[int]:
    size = max(1, budget // max(per_sample, 1))
    for start in range(0, total, size):
        yield min(size, total - start)


def _sensitivity(cfg: SweepConfig, width: int, dev: torch.device, dtype: torch.dtype) -> dict:
    mhc, n_s = cfg.shape, cfg.shape.n_s
    gen = make_generator(cfg.seed, width, "dynamic_sensitivity", dev)
    directions = make_generator(cfg.seed, width, "gradient_directions", dev)
    init = cfg.parameterization.init(n_s, width)
    rows, fan_in = (2 + n_s) * n_s, n_s * width
    scale, base = init.scale_tensor(dtype, dev), init.base_tensor(n_s, dtype, dev)
    sens, chain = [], []
    for b in _chunks(cfg.sampling.sensitivity_samples, rows * fan_in, cfg.chunk_elements):
        fn = init.sample_fn(n_s, fan_in, (b,), generator=gen, dtype=dtype, device=dev)
        x = torch.randn(b, n_s, width, generator=gen, dtype=dtype, device=dev)
        s, c = dg.sensitivity_and_chain(x, fn, scale, base, mhc.K, mhc.hc_eps, mhc.norm_eps, generator=directions)
        sens.append(s)
        chain.append(c)
    return {
        "dynamic_sensitivity": {k: torch.cat([getattr(p, k) for p in sens]) for k in dg.Sensitivity._fields},
        "chain_decomposition": {k: torch.cat([getattr(p, k) for p in chain]) for k in dg.ChainFactors._fields},
    }


def _logit_update(cfg: SweepConfig, width: int, dev: torch.device, dtype: torch.dtype) -> dict:
    """Diagnostic 5 with one SGD and one Adam step, each under the parameterization's own LR rule."""
    mhc, n_s = cfg.shape, cfg.shape.n_s
    gen = make_generator(cfg.seed, width, "logit_update", dev)
    p = cfg.parameterization
    init = p.init(n_s, width)
    rows, fan_in = n_s * n_s, n_s * width
    s = torch.tensor([init.scale[2]], dtype=dtype, device=dev)
    b_c = init.base_tensor(n_s, dtype, dev, gate="comb")
    rates: dict[str, dg.Rates] = {}
    for opt in dg.OPTIMIZER_STEPS:
        m = p.lr_multipliers(opt, n_s, width)
        rates[opt] = (cfg.lr * m["fn"], cfg.lr * m["scale"], cfg.lr * m["base"])
    parts: dict[str, list] = {opt: [] for opt in dg.OPTIMIZER_STEPS}
    for b in _chunks(cfg.sampling.update_samples, rows * fan_in, cfg.chunk_elements):
        W = init.sample_fn(n_s, fan_in, (b,), generator=gen, gate="comb", dtype=dtype, device=dev)
        x = torch.randn(b, n_s, width, generator=gen, dtype=dtype, device=dev)
        for opt, step in dg.logit_updates(x, W, s, b_c, rates, mhc.K, mhc.hc_eps, mhc.norm_eps).items():
            parts[opt].append(step)
    out = {}
    for opt, steps in parts.items():
        prefix = "" if opt == "sgd" else f"{opt}_"  # the seed's keys are SGD's
        out.update({prefix + k: torch.cat([getattr(u, k) for u in steps]) for k in dg.LogitUpdate._fields})
    return out


def _quotient(cfg: SweepConfig, dev: torch.device) -> dict[int, dict]:
    mhc, n_s = cfg.shape, cfg.shape.n_s
    dtype = DTYPES[cfg.quotient_dtype]
    gen = make_generator(cfg.seed, 0, "quotient", dev)
    Z = torch.randn(cfg.sampling.quotient_samples, n_s, n_s, generator=gen, dtype=dtype, device=dev)
    ks = tuple(dict.fromkeys((*cfg.sampling.quotient_K, mhc.K)))  # the model's K too: Theorem D's condition 3
    jacobians = sinkhorn_jacobians(Z, ks, mhc.hc_eps)  # one run of max(K) rounds
    return {k: dg.quotient_spectrum(J)._asdict() for k, J in jacobians.items()}


def _to_numpy(tree: dict) -> dict:
    return {k: (_to_numpy(v) if isinstance(v, dict) else v.detach().cpu().double().numpy()) for k, v in tree.items()}


def run_sweep(cfg: SweepConfig, progress: ProgressFn | None = None) -> SweepResult:
    """Run every diagnostic at every width of ``cfg`` and fit each width-dependent metric;
    :class:`~mhc_mup.errors.ResourceError` before anything is allocated if it cannot fit in the device's memory."""
    cfg.validate()
    check_memory(cfg)
    dev = resolve_device(cfg.device)
    dtype = DTYPES[cfg.dtype]
    widths = sorted(cfg.widths)
    total = len(widths) + 2
    seconds: dict[str, float] = {}

    def tick(what: str, done: int) -> None:
        if progress is not None:
            progress(what, done, total)

    tick("quotient Jacobian", 0)
    t0 = time.perf_counter()
    quotient = _to_numpy(_quotient(cfg, dev))
    seconds["quotient_jacobian"] = time.perf_counter() - t0
    samples: dict[int, dict[str, Samples]] = {}
    for i, w in enumerate(widths):
        tick(f"width {w}", i + 1)
        t0 = time.perf_counter()
        per = _state_diagnostics(cfg, w, dev, dtype)
        t1 = time.perf_counter()
        per.update(_sensitivity(cfg, w, dev, dtype))
        t2 = time.perf_counter()
        per["logit_update"] = _logit_update(cfg, w, dev, dtype)
        t3 = time.perf_counter()
        samples[w] = _to_numpy(per)
        for name, dt in (("state", t1 - t0), ("dynamic_sensitivity", t2 - t1), ("logit_update", t3 - t2)):
            seconds[name] = seconds.get(name, 0.0) + dt
    tick("scaling fits", len(widths) + 1)
    t0 = time.perf_counter()
    fits = fit_all(widths, samples, n_boot=cfg.fit.n_boot, confidence=cfg.fit.confidence, seed=cfg.seed)
    seconds["fits"] = time.perf_counter() - t0
    tick("done", total)
    return SweepResult(cfg, samples, quotient, fits, seconds)


def fit_all(
    widths: list[int],
    samples: dict[int, dict[str, Samples]],
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[tuple[str, str], PowerLawFit]:
    """A power-law fit of every width-dependent summary key over ``widths``."""
    fits: dict[tuple[str, str], PowerLawFit] = {}
    for i, diag in enumerate(WIDTH_DIAGNOSTICS):
        keys = SUMMARY_KEYS[diag]
        series = {sk.sample: [samples[w][diag][sk.sample] for w in widths] for sk in keys}
        stats = {sk.key: (sk.sample, REDUCERS[sk.reducer]) for sk in keys}
        # one set of resamples per diagnostic: its values are measured on the same draws
        group = fit_power_laws(widths, series, stats, n_boot=n_boot, confidence=confidence, seed=seed * 1000 + i * 50)
        fits.update({(diag, key): fit for key, fit in group.items()})
    return {(diag, sk.key): fits[(diag, sk.key)] for diag in WIDTH_DIAGNOSTICS for sk in SUMMARY_KEYS[diag]}
