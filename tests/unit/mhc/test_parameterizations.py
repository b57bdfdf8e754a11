"""Parameterizations: safe expressions, the report's presets, init statistics and LR multipliers."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from mhc_mup.mhc.expressions import Expr, ExpressionError
from mhc_mup.mhc.parameterizations import (
    GATES,
    LR_KEYS,
    PARAMETERIZATIONS,
    RULE_KEYS,
    Parameterization,
    ParameterizationError,
    get_parameterization,
    parameterization,
    parse_spec,
)

# ── expressions ────────────────────────────────────────────────────────────────────────────────


@given(
    n_s=st.integers(min_value=1, max_value=64),
    d=st.integers(min_value=1, max_value=1 << 16),
)
def test_expressions_evaluate_like_the_formula(n_s, d):
    cases = {
        "1/(n_s*d)": 1 / (n_s * d),
        "1/sqrt(n_s*d)": 1 / math.sqrt(n_s * d),
        "0.1*(64/d)**0.5": 0.1 * (64 / d) ** 0.5,
        "-d + 2*n_s - 3": -d + 2 * n_s - 3,
        "max(1, d/256) * log(d + 1) / exp(1)": max(1, d / 256) * math.log(d + 1) / math.exp(1),
        "abs(-n_s) * pi * e": n_s * math.pi * math.e,
        "log2(d) + log10(d)": math.log2(d) + math.log10(d),
        "min(n_s, d)": min(n_s, d),
        "+2": 2.0,
    }
    for text, want in cases.items():
        assert Expr(text)(n_s, d) == pytest.approx(want, rel=1e-12), text


UNSAFE = [
    "__import__('os').system('true')",  # import through a call
    "import os",  # statement
    "d.real",  # attribute access
    "d.__class__",
    "().__class__.__bases__",
    "open('/etc/passwd')",  # a call other than a math function
    "eval('1')",
    "exec('1')",
    "getattr(d, 'real')",
    "sqrt.__call__(4)",  # call through an attribute
    "(lambda: 1)()",
    "[d][0]",  # subscript, list
    "{'a': 1}",
    "x",  # unknown name
    "n_s if d else 1",
    "d // 2",  # operators outside + - * / **
    "d % 3",
    "d < 3",
    "'abc'",  # strings
    "True",
    "sqrt(x=4)",  # keywords
    "sqrt(*[4])",
    "f'{d}'",
    "d := 3",
    "",
    "1 +",
]


@pytest.mark.parametrize("text", UNSAFE)
def test_unsafe_or_malformed_expressions_are_rejected_at_parse_time(text):
    with pytest.raises(ExpressionError):
        Expr(text)


def test_math_errors_name_the_expression_and_the_width():
    with pytest.raises(ExpressionError, match=r"'1/\(d-64\)' fails at n_s=4, d=64"):
        Expr("1/(d-64)")(4, 64)
    with pytest.raises(ExpressionError, match="negative number raised to a fractional power"):
        Expr("(-d)**0.5")(4, 64)
    with pytest.raises(ExpressionError, match="fails at"):
        Expr("10**10**10")(4, 64)  # overflow, not a hang
    assert Expr("d").constant is False and Expr("2*pi").constant is True
    assert Expr(0.02) == Expr("0.02") and Expr(3).text == "3.0"
    with pytest.raises(ExpressionError, match="longer than"):
        Expr("d+" * 200 + "1")


# ── the presets ────────────────────────────────────────────────────────────────────────────────

REPORT_TABLE = {  # name: (σ_W of every gate, scale (pre, post, comb)) as functions of (n_s, d)
    "baseline": (lambda n, d: 0.02, lambda n, d: (0.1, 0.1, 0.1)),
    "A": (lambda n, d: 0.02, lambda n, d: (0.1, 0.1, 1 / (n * d))),
    "B": (lambda n, d: 1 / math.sqrt(n * d), lambda n, d: (0.1, 0.1, 1 / math.sqrt(n * d))),
    "C": (lambda n, d: 1 / (n * d), lambda n, d: (0.1, 0.1, 0.1)),
    "D": (lambda n, d: 0.02, lambda n, d: (0.1, 0.1, 1 / math.sqrt(d))),
    "E": (lambda n, d: 1 / math.sqrt(n * d), lambda n, d: (0.1, 0.1, 0.1)),
    "mup": (lambda n, d: 1 / (n * d), lambda n, d: (0.1, 0.1, 0.1)),
    "hf-v4": (lambda n, d: 0.02, lambda n, d: (1.0, 1.0, 1.0)),
    "mhc-paper": (lambda n, d: 0.02, lambda n, d: (0.01, 0.01, 0.01)),
}


@pytest.mark.parametrize("name", list(REPORT_TABLE))
@pytest.mark.parametrize("d", [64, 1024])
def test_preset_init_matches_its_formula(name, d):
    n_s = 4
    sigma, scale = REPORT_TABLE[name]
    init = get_parameterization(name).init(n_s, d)
    assert init.sigma_w == pytest.approx((sigma(n_s, d),) * 3, rel=1e-12)
    assert init.scale == pytest.approx(scale(n_s, d), rel=1e-12)
    assert init.base == (0.0, 0.0, 0.0)
    # empirical std of each gate's rows of a sampled fn, within sampling error
    gen = torch.Generator().manual_seed(d)
    fn = init.sample_fn(n_s, n_s * d, (8,), generator=gen, dtype=torch.float64)
    rows = {"pre": slice(0, 4), "post": slice(4, 8), "comb": slice(8, 24)}
    for gate, sl in rows.items():
        block = fn[:, sl, :]
        n = block.numel()
        std = block.std().item()
        assert abs(std / sigma(n_s, d) - 1) < 5 / math.sqrt(2 * n), (gate, std)
        assert abs(block.mean().item()) < 5 * sigma(n_s, d) / math.sqrt(n)
    base = init.base_tensor(n_s, torch.float64)
    assert base.shape == (24,) and torch.all(base == 0)


def test_per_gate_std_and_base_land_on_their_rows():
    p = parameterization("g", sigma_pre="1", sigma_post="10", sigma_comb="100", base_post="2", base_comb="-1")
    init = p.init(4, 64)
    fn = init.sample_fn(4, 256, (4,), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    stds = [fn[:, :4].std().item(), fn[:, 4:8].std().item(), fn[:, 8:].std().item()]
    assert stds == pytest.approx([1, 10, 100], rel=0.1)
    torch.testing.assert_close(
        init.base_tensor(4, torch.float64),
        torch.tensor([0.0] * 4 + [2.0] * 4 + [-1.0] * 16, dtype=torch.float64),
    )
    comb_only = init.sample_fn(4, 256, generator=torch.Generator().manual_seed(0), gate="comb", dtype=torch.float64)
    assert comb_only.shape == (16, 256) and comb_only.std().item() == pytest.approx(100, rel=0.1)
    assert init.base_tensor(4, torch.float64, gate="comb").tolist() == [-1.0] * 16


@pytest.mark.parametrize("d", [64, 256, 4096])
def test_lr_multipliers_are_exactly_the_formulas(d):
    n_s = 4
    for name, p in PARAMETERIZATIONS.items():
        for opt in ("sgd", "adam"):
            m = p.lr_multipliers(opt, n_s, d)
            want_fn = 1 / d if name == "mup" else 1.0
            assert m == {"fn": want_fn, "scale": 1.0, "base": 1.0}, (name, opt)
    mine = parameterization("mine", lr_fn_sgd="1/(n_s*d)", lr_fn_adam="1/d", lr_scale_adam="sqrt(d)", lr_base="0")
    assert mine.lr_multipliers("sgd", n_s, d) == {"fn": 1 / (n_s * d), "scale": 1.0, "base": 0.0}
    assert mine.lr_multipliers("adam", n_s, d) == {"fn": 1 / d, "scale": math.sqrt(d), "base": 0.0}
    with pytest.raises(ParameterizationError, match="optimizer must be one of sgd, adam"):
        mine.lr_multipliers("lion", n_s, d)


def test_aliases_expand_and_unknown_rules_are_named():
    p = parameterization("x", sigma_w="1/d", lr="2", scale_comb="3")
    assert {p.rules[f"sigma_{g}"].text for g in GATES} == {"1/d"}
    assert {p.rules[k].text for k in LR_KEYS} == {"2"}
    assert [p.rules[f"scale_{g}"].text for g in GATES] == ["0.1", "0.1", "3"]
    with pytest.raises(ParameterizationError, match="unknown rule 'sigma'"):
        parameterization("x", sigma="1")


def test_rule_values_are_checked_at_every_width():
    with pytest.raises(ParameterizationError, match=r"sigma_pre = '1-d/128' gives 0.0 at d=128 \(n_s=4\)"):
        parameterization("bad", sigma_w="1-d/128").check(4, (64, 128))
    with pytest.raises(ParameterizationError, match=r"scale_comb = 'd-64' gives 0\.0 at d=64"):
        parameterization("bad", scale_comb="d-64").check(4, (64,))
    with pytest.raises(ParameterizationError, match="lr_fn_sgd = '-1'"):
        parameterization("bad", lr_fn_sgd="-1").check(4, (64,))
    with pytest.raises(
        ParameterizationError, match=r"base_post: expression 'log\(0\*d\)' fails at n_s=4, d=64: math domain error"
    ):
        parameterization("bad", base_post="log(0*d)").check(4, (64,))


def test_serialises_through_json():
    for p in PARAMETERIZATIONS.values():
        back = Parameterization.from_dict(json.loads(json.dumps(p.to_dict())))
        assert back == p
        assert set(back.rules) == set(RULE_KEYS)


def test_parse_spec():
    assert parse_spec("C") is PARAMETERIZATIONS["C"]
    mine = parse_spec("mine: sigma_w=1/(n_s*d), scale=max(0.1, 1/d); lr_fn=1/d")
    assert mine.name == "mine"
    assert mine.init(4, 64).sigma_w == (1 / 256,) * 3
    assert mine.init(4, 64).scale == (0.1,) * 3
    assert mine.lr_multipliers("adam", 4, 64)["fn"] == 1 / 64
    slow = parse_spec("slow: from=mup, lr_fn=1/(n_s*d)")
    assert slow.init(4, 64) == PARAMETERIZATIONS["mup"].init(4, 64)
    assert slow.lr_multipliers("sgd", 4, 64)["fn"] == 1 / 256
    assert "from mup" in slow.description
    for bad, message in (
        ("nope", "unknown parameterization 'nope'"),
        ("mine: sigma_w", "'sigma_w' is not rule=expr"),
        ("mine: from=Z", "unknown parameterization 'Z'"),
        ("mine:", "sets no rule"),
        ("sigma_w=1", "write NAME: rule=expr"),
        ("a b: sigma_w=1", "name 'a b'"),
        ("mine: sigma_w=os.system('x')", "sigma_w: .* call to 'os.system' is not allowed"),
    ):
        with pytest.raises(ParameterizationError, match=message):
            parse_spec(bad)


def test_rule_table_reads_like_the_reports():
    rows = {r["parameter"]: r for r in PARAMETERIZATIONS["mup"].rule_table()}
    assert rows["fn"] == {
        "parameter": "fn",
        "init": "N(0, σ²), σ = 1/(n_s*d)",
        "lr_sgd": "η·(1/d)",
        "lr_adam": "η·(1/d)",
    }
    assert rows["scale"]["init"] == "0.1" and rows["scale"]["lr_sgd"] == "η"
    assert rows["base"]["init"] == "0" and rows["base"]["lr_adam"] == "η"
    assert PARAMETERIZATIONS["A"].rule_table()[1]["init"] == "pre: 0.1, post: 0.1, comb: 1/(n_s*d)"
