"""Reading the fits: O(1) / grows / decays, and the Theorem D checklist.

Theorem D (the report's width-transfer theorem for dynamic mHC) needs five conditions:

1. every branch satisfies spectral µP — not measured by the sweep, so *assumed*;
2. the finite-K Sinkhorn error ε_K is O(1) (in practice tiny): diagnostic 1;
3. the Sinkhorn quotient Jacobian is well conditioned: diagnostic 3 at the model's K;
4. the dynamic sensitivity ``‖DC(x)‖·‖x‖`` is O(1) in d: diagnostic 4;
5. the generated-logit update ``‖Π_⊥ΔZ‖`` is O(1) under the learning-rate rule: diagnostic 5,
   with one SGD step and one Adam step.

Every sentence here is assembled from measured numbers; nothing is a fixed template claim.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mhc_mup._io import StrEnum
from mhc_mup.stats.fitting import PowerLawFit, bootstrap_estimate
from mhc_mup.stats.readings import DECAYS, GROWS, O1, UNCLEAR, Reading, classify

if TYPE_CHECKING:
    from mhc_mup.diagnostics.sweep import SweepResult


class Status(StrEnum):
    """A checklist entry's status; verdict.json holds the bare value (``"pass"``)."""

    PASS = "pass"
    FAIL = "fail"
    ASSUMED = "assumed"  # not measured by the sweep


PASS, FAIL, ASSUMED = Status.PASS, Status.FAIL, Status.ASSUMED


@dataclass(frozen=True)
class VerdictConfig:
    """Thresholds of the checklist. ``tolerance``: an exponent is O(1) when its whole confidence
    interval lies in ``[-tolerance, +tolerance]``."""

    tolerance: float = 0.1
    eps_k_max: float = 1e-3
    kappa_max: float = 100.0

    def __post_init__(self) -> None:
        for name in ("tolerance", "eps_k_max", "kappa_max"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")


def describe_scaling(fit: PowerLawFit) -> str:
    """``d^0.985 (95% interval 0.960 – 1.009)`` from the fit itself."""
    if not np.isfinite(fit.exponent):
        return f"no power law ({fit.note})"
    return f"d^{fit.exponent:.3f} ({fit.confidence:.0%} interval {fit.ci_low:.3f} – {fit.ci_high:.3f})"


@dataclass(frozen=True)
class Check:
    """One measured quantity against its threshold."""

    metric: str
    label: str
    kind: str  # "exponent" or "value"
    estimate: float
    ci_low: float | None
    ci_high: float | None
    threshold: str
    reading: Reading | str  # a Reading for an exponent; what the value is (e.g. "largest over widths") otherwise
    status: Status


@dataclass(frozen=True)
class Condition:
    number: int
    name: str
    statement: str
    checks: tuple[Check, ...]
    status: Status
    sentence: str


@dataclass
class Verdict:
    parameterization: str
    conditions: list[Condition]
    summary: str
    notes: list[str] = field(default_factory=list)
    config: VerdictConfig = field(default_factory=VerdictConfig)

    @property
    def all_hold(self) -> bool:
        """Every condition passes; False while condition 1 is only assumed."""
        return all(c.status == PASS for c in self.conditions)

    @property
    def measured_hold(self) -> bool:
        """Every measured condition passes (assumed ones aside)."""
        return all(c.status != FAIL for c in self.conditions)

    def to_dict(self) -> dict:
        return {
            "parameterization": self.parameterization,
            "all_conditions_hold": self.all_hold,
            "measured_conditions_hold": self.measured_hold,
            "summary": self.summary,
            "notes": self.notes,
            "thresholds": asdict(self.config),
            "conditions": [
                {**{k: v for k, v in asdict(c).items() if k != "checks"}, "checks": [asdict(k) for k in c.checks]}
                for c in self.conditions
            ],
        }


def _exponent_check(result: SweepResult, diag: str, key: str, label: str, tol: float) -> Check:
    fit = result.fit(diag, key)
    reading = classify(fit, tol)
    return Check(
        metric=f"{diag}.{key}",
        label=label,
        kind="exponent",
        estimate=fit.exponent,
        ci_low=fit.ci_low,
        ci_high=fit.ci_high,
        threshold=f"interval inside [-{tol:g}, +{tol:g}]",
        reading=reading,
        status=PASS if reading == O1 else FAIL,
    )


def scaling_phrase(label: str, fit: PowerLawFit, tolerance: float) -> str:
    """``"‖DC(x)‖·‖x‖ grows as d^0.985 (95% interval 0.960 – 1.009), outside the O(1) band ±0.1"`` —
    the verb from :func:`classify`, every number from the fit."""
    return _phrase(label, fit.exponent, fit.ci_low, fit.ci_high, classify(fit, tolerance),
                   f"{fit.confidence:.0%}", tolerance)  # fmt: skip


def _phrase(label: str, estimate: float, lo: float, hi: float, reading: Reading | str, level: str, tol: float) -> str:
    if not np.isfinite(estimate):
        return f"{label} has no power-law fit"
    interval = f"{level} interval {lo:.3f} – {hi:.3f}"
    if reading == UNCLEAR:
        return (
            f"{label} scales as d^{estimate:.3f}, but its {interval} reaches outside the O(1) band "
            f"±{tol:g} (more widths or samples would settle it)"
        )
    verb = {O1: "is O(1):", GROWS: "grows as", DECAYS: "decays as"}[Reading(reading)]
    band = "" if reading == O1 else f", outside the O(1) band ±{tol:g}"
    return f"{label} {verb} d^{estimate:.3f} ({interval}){band}"


def _scaling_phrase(check: Check, level: str, tol: float) -> str:
    # an exponent's check: its interval is set (only checks of another kind leave it None)
    return _phrase(check.label, check.estimate, check.ci_low, check.ci_high, check.reading, level, tol)  # type: ignore[arg-type]


def theorem_d(result: SweepResult, config: VerdictConfig | None = None) -> Verdict:
    """The Theorem D checklist for one sweep, every sentence from its measured numbers."""
    vc = config or VerdictConfig()
    level = f"{result.config.fit.confidence:.0%}"
    conditions = [condition(result, vc, level) for condition in CONDITIONS]
    notes = _gate_notes(result, vc.tolerance, level)
    return Verdict(result.config.parameterization.name, conditions, _summary(conditions), notes, vc)


def _holds(status: Status) -> str:
    return "holds" if status == PASS else "fails"


def _branch_mup(result: SweepResult, vc: VerdictConfig, level: str) -> Condition:
    """Condition 1: assumed; the sweep has no branches to measure."""
    return Condition(
        1,
        "branch µP",
        "every branch f satisfies spectral µP",
        (),
        ASSUMED,
        "Condition 1 is assumed, not measured: the sweep has no branches (a coordinate check of a "
        "trained model tests it).",
    )


def _sinkhorn_error(result: SweepResult, vc: VerdictConfig, level: str) -> Condition:
    """Condition 2: the largest ε_K over every comb at every width stays below ``eps_k_max``."""
    cfg, widths = result.config, sorted(result.samples)
    eps = max(float(np.max(result.samples[w]["sinkhorn_error"]["eps_K"])) for w in widths)
    n_combs = cfg.sampling.state_tokens * len(widths)
    check = Check(
        metric="sinkhorn_error.eps_K_max",
        label="ε_K",
        kind="value",
        estimate=eps,
        ci_low=None,
        ci_high=None,
        threshold=f"<= {vc.eps_k_max:g} at every width",
        reading="largest over widths",
        status=PASS if eps <= vc.eps_k_max else FAIL,
    )
    return Condition(
        2,
        "Sinkhorn error",
        "the finite-K Sinkhorn error ε_K is O(1)",
        (check,),
        check.status,
        f"Condition 2 {_holds(check.status)}: the largest Sinkhorn error over "
        f"{n_combs} combs at {len(widths)} widths is ε_K = {eps:.1e} at K={cfg.shape.K}, "
        f"{'within' if check.status == PASS else 'above'} the threshold {vc.eps_k_max:g}.",
    )


def _quotient_conditioning(result: SweepResult, vc: VerdictConfig, level: str) -> Condition:
    """Condition 3: at the model's K the median κ of the quotient Jacobian has its interval below ``kappa_max``."""
    cfg = result.config
    kappa = result.quotient[cfg.shape.K]["kappa"]
    est = bootstrap_estimate(
        kappa, lambda a: np.median(a, axis=-1), n_boot=cfg.fit.n_boot, confidence=cfg.fit.confidence, seed=cfg.seed
    )
    check = Check(
        metric=f"quotient_jacobian.K={cfg.shape.K}.kappa_median",
        label="median κ of the quotient Jacobian",
        kind="value",
        estimate=est.value,
        ci_low=est.ci_low,
        ci_high=est.ci_high,
        threshold=f"interval below {vc.kappa_max:g}",
        reading="median over logit draws",
        status=PASS if est.ci_high < vc.kappa_max else FAIL,
    )
    return Condition(
        3,
        "quotient conditioning",
        "the Sinkhorn quotient Jacobian is well conditioned",
        (check,),
        check.status,
        f"Condition 3 {_holds(check.status)}: at K={cfg.shape.K} the quotient Jacobian's "
        f"median condition number is {est.value:.2f} ({level} interval {est.ci_low:.2f} – {est.ci_high:.2f}, "
        f"{est.n_samples} draws of Z), {'below' if check.status == PASS else 'not below'} {vc.kappa_max:g}.",
    )


def _dynamic_sensitivity(result: SweepResult, vc: VerdictConfig, level: str) -> Condition:
    """Condition 4: the exponent of ``‖DC(x)‖·‖x‖`` reads O(1)."""
    check = _exponent_check(result, "dynamic_sensitivity", "dc_x_mean", "‖DC(x)‖·‖x‖", vc.tolerance)
    return Condition(
        4,
        "dynamic sensitivity",
        "the dynamic sensitivity ‖DC(x)‖·‖x‖ is O(1) in d",
        (check,),
        check.status,
        f"Condition 4 {_holds(check.status)}: {_scaling_phrase(check, level, vc.tolerance)}.",
    )


def _logit_update(result: SweepResult, vc: VerdictConfig, level: str) -> Condition:
    """Condition 5: ``‖Π⊥ΔZ‖`` reads O(1) after one SGD step and after one Adam step."""
    cfg, tol = result.config, vc.tolerance
    checks = (
        _exponent_check(result, "logit_update", "proj_perp_norm_mean", "‖Π⊥ΔZ‖ after one SGD step", tol),
        _exponent_check(result, "logit_update", "adam_proj_perp_norm_mean", "‖Π⊥ΔZ‖ after one Adam step", tol),
    )
    status = PASS if all(c.status == PASS for c in checks) else FAIL
    return Condition(
        5,
        "logit update",
        "the generated-logit update ‖Π⊥ΔZ‖ is O(1) under the learning-rate rule",
        checks,
        status,
        f"Condition 5 {_holds(status)} under {cfg.parameterization.name}'s learning-rate "
        f"rule (η = {cfg.lr:g}): " + "; ".join(_scaling_phrase(c, level, tol) for c in checks) + ".",
    )


ConditionFn = Callable[["SweepResult", VerdictConfig, str], Condition]  # (result, thresholds, confidence level)
CONDITIONS: tuple[ConditionFn, ...] = (
    _branch_mup,
    _sinkhorn_error,
    _quotient_conditioning,
    _dynamic_sensitivity,
    _logit_update,
)


def _summary(conditions: list[Condition]) -> str:
    """One sentence: all hold, all measured hold (naming the assumed ones), or which fail."""
    failed = [c.number for c in conditions if c.status == FAIL]
    assumed = [c.number for c in conditions if c.status == ASSUMED]
    if not failed and not assumed:
        return "All conditions hold."
    if not failed:
        measured = [c.number for c in conditions if c.status == PASS]
        return (
            f"All measured conditions ({join_numbers(measured)}) hold; condition{'s' if len(assumed) > 1 else ''} "
            f"{join_numbers(assumed)} {'are' if len(assumed) > 1 else 'is'} assumed, not measured."
        )
    return f"Theorem D's conditions do not all hold: {join_numbers(failed)} {'fail' if len(failed) > 1 else 'fails'}."


def _gate_notes(result: SweepResult, tol: float, level: str) -> list[str]:
    """What the checklist does not cover but the data show: pre and post gates that are not O(1)."""
    notes = []
    for key, name in (("dp_x_mean", "pre"), ("dq_x_mean", "post")):
        check = _exponent_check(result, "dynamic_sensitivity", key, f"the {name} gate's ‖D{name}(x)‖·‖x‖", tol)
        if check.reading != O1:
            notes.append(f"Outside condition 4, which covers the comb only: {_scaling_phrase(check, level, tol)}.")
    return notes


def join_numbers(numbers: list[int]) -> str:
    """``[4]`` → ``"4"``; ``[2, 3, 4]`` → ``"2, 3 and 4"``."""
    text = [str(n) for n in numbers]
    return text[0] if len(text) == 1 else ", ".join(text[:-1]) + " and " + text[-1]
