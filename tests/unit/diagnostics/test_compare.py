"""The corrections table, the chain decomposition over widths and the Theorem D checklist."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mhc_mup.diagnostics.compare import run_compare
from mhc_mup.diagnostics.config import SamplingSettings, SweepConfig
from mhc_mup.diagnostics.corrections import corrections_rows
from mhc_mup.diagnostics.results import verdict_document
from mhc_mup.diagnostics.verdict import ASSUMED, FAIL, PASS, Status, VerdictConfig, theorem_d
from mhc_mup.mhc.parameterizations import COMPARE_DEFAULT, PARAMETERIZATIONS
from mhc_mup.stats.fitting import FitSettings
from mhc_mup.stats.readings import GROWS, O1

FAST = SweepConfig(
    widths=(64, 128, 256, 512),
    sampling=SamplingSettings(
        state_tokens=8, quotient_samples=20, quotient_K=(1, 20), sensitivity_samples=12, update_samples=12
    ),
    fit=FitSettings(n_boot=300),
)

# The report's corrections table (its comb column), and what the closed-form scaling says for pre/post:
# σ_W·s·√(n_s·d)·√(n_s·d) per gate, the gate's own scale s.
REPORT = {  # name: (comb, pre, post)
    "baseline": (0.98, 0.98, 0.98),
    "A": (-0.04, 0.98, 0.98),
    "B": (-0.04, 0.5, 0.5),
    "C": (-0.04, -0.02, -0.02),
    "D": (0.46, 0.98, 0.98),
    "E": (0.47, 0.5, 0.5),
    "mup": (-0.04, -0.02, -0.02),
}


@pytest.fixture(scope="module")
def results():
    return run_compare(FAST, [PARAMETERIZATIONS[n] for n in COMPARE_DEFAULT])


def test_corrections_table_reproduces_the_report(results):
    rows = {(r["parameterization"], r["quantity"]): r for r in corrections_rows(results, 0.1)}
    for name, expected in REPORT.items():
        for quantity, want in zip(("comb", "pre", "post"), expected, strict=True):
            row = rows[(name, quantity)]
            assert row["exponent"] == pytest.approx(want, abs=0.07), (name, quantity, row)
            assert row["verdict"] == (O1 if abs(want) < 0.1 else GROWS), (name, quantity, row)


def test_logit_update_grows_under_a_fixed_lr_and_is_o1_under_mup(results):
    rows = {(r["parameterization"], r["quantity"]): r for r in corrections_rows(results, 0.1)}
    for quantity in ("update_sgd", "update_adam"):
        assert rows[("mup", quantity)]["verdict"] == O1
        assert rows[("C", quantity)]["verdict"] == GROWS  # same init as mup, fixed LR
        assert rows[("C", quantity)]["exponent"] > 0.8
        assert rows[("baseline", quantity)]["exponent"] > 0.8


def test_chain_factors_bound_the_measured_sensitivity_at_every_width(results):
    for name, result in results.items():
        for w in result.config.widths:
            c = result.samples[w]["chain_decomposition"]
            product = c["rms_jacobian"] * c["scale_comb"] * c["w_comb"] * c["sinkhorn_jacobian"] * c["x_norm"]
            np.testing.assert_allclose(c["bound"], product, rtol=1e-5)
            assert np.all(c["measured"] <= c["bound"] * (1 + 1e-5)), (name, w)
            np.testing.assert_allclose(c["measured"], result.samples[w]["dynamic_sensitivity"]["dc_x"], rtol=1e-6)
        # two √d factors: ‖x‖ ~ d^0.5 exactly, ‖W_comb‖ ~ σ_W·√(n_s·d) up to finite-size bending
        assert result.fit("chain_decomposition", "x_norm_mean").exponent == pytest.approx(0.5, abs=0.03)
        bound, measured = (result.fit("chain_decomposition", k).exponent for k in ("bound_mean", "measured_mean"))
        assert bound == pytest.approx(measured, abs=0.06), name


def test_typical_directions_next_to_the_worst_case(results):
    base = results["baseline"]
    worst = base.fit("dynamic_sensitivity", "dc_x_mean").exponent
    # random directions see ‖J‖_F/√N: half a power of d below the worst case
    assert base.fit("dynamic_sensitivity", "dc_x_random_mean").exponent == pytest.approx(worst - 0.5, abs=0.07)
    # a gradient step of the state lines up with the top singular directions: the worst case is what it hits
    assert base.fit("dynamic_sensitivity", "dc_x_grad_mean").exponent == pytest.approx(worst, abs=0.07)
    for w in FAST.widths:
        s = base.samples[w]["dynamic_sensitivity"]
        assert np.all(s["dc_x_random"] <= s["dc_x"] * (1 + 1e-6))
        assert np.all(s["dc_x_grad"] <= s["dc_x"] * (1 + 1e-6))


def test_theorem_d_verdicts_follow_the_numbers(results):
    mup, base, a = (theorem_d(results[n]) for n in ("mup", "baseline", "A"))
    assert [c.status for c in mup.conditions] == ["assumed", "pass", "pass", "pass", "pass"]
    assert mup.measured_hold and not mup.all_hold  # condition 1 is never measured here
    assert "All conditions hold" not in mup.summary
    assert mup.summary.startswith("All measured conditions (2, 3, 4 and 5) hold; condition 1 is assumed")
    assert [c.status for c in base.conditions] == ["assumed", "pass", "pass", "fail", "fail"]
    assert base.summary == "Theorem D's conditions do not all hold: 4 and 5 fail."
    fit = results["baseline"].fit("dynamic_sensitivity", "dc_x_mean")
    c4 = base.conditions[3]
    assert c4.checks[0].estimate == fit.exponent and c4.checks[0].ci_high == fit.ci_high
    assert f"d^{fit.exponent:.3f}" in c4.sentence and f"{fit.ci_low:.3f} – {fit.ci_high:.3f}" in c4.sentence
    # A fixes the comb but not the gates: the checklist passes 4 and says what it does not cover
    assert a.conditions[3].status == "pass" and any("pre gate" in n for n in a.notes)
    assert not mup.notes
    # a looser κ threshold or band changes the verdict, as it should
    strict = theorem_d(results["mup"], VerdictConfig(kappa_max=2.0))
    assert strict.conditions[2].status == "fail" and "not below 2" in strict.conditions[2].sentence


def test_statuses_are_enum_members_that_serialise_as_their_values(results):
    verdict = theorem_d(results["baseline"])
    assert [c.status for c in verdict.conditions] == [ASSUMED, PASS, PASS, FAIL, FAIL]
    assert all(isinstance(c.status, Status) for c in verdict.conditions)
    assert (PASS, FAIL, ASSUMED) == ("pass", "fail", "assumed") and f"{FAIL}" == str(FAIL) == "fail"
    doc = json.loads(json.dumps(verdict_document({"baseline": verdict})))
    conditions = doc["verdicts"]["baseline"]["conditions"]
    assert [c["status"] for c in conditions] == ["assumed", "pass", "pass", "fail", "fail"]
    assert conditions[3]["checks"][0]["reading"] == "grows"
    assert conditions[1]["checks"][0]["reading"] == "largest over widths"


def test_each_condition_is_its_own_function_and_theorem_d_assembles_them(results):
    from mhc_mup.diagnostics.verdict import CONDITIONS

    vc, result = VerdictConfig(), results["A"]
    whole = theorem_d(result, vc)
    assert [condition(result, vc, "95%") for condition in CONDITIONS] == whole.conditions
    assert [c.number for c in whole.conditions] == [1, 2, 3, 4, 5]
