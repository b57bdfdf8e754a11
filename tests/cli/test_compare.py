"""``mhc-mup compare``: the files it writes agree with one another and with what it prints."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from mhc_mup.cli import main
from mhc_mup.diagnostics.config import SweepConfig
from mhc_mup.mhc.parameterizations import PARAMETERIZATIONS, parse_spec


def test_compare_cli_writes_tables_that_match_the_sweeps(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--widths", "32,64,128", "--samples", "6", "--quotient-samples", "10"]
    args += ["--quotient-K", "1,20", "--state-tokens", "4", "--bootstrap", "100", "--params", "baseline,mup"]
    args += ["--param", "slow: from=mup, lr_fn=1/(n_s*d)", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "baseline",
        "chain.csv",
        "corrections.csv",
        "figures",
        "mup",
        "report.html",
        "report.md",
        "slow",
        "verdict.json",
    ]
    corrections = pd.read_csv(out / "corrections.csv")
    assert list(corrections.parameterization.unique()) == ["baseline", "mup", "slow"]
    assert set(corrections.quantity) == {"comb", "pre", "post", "update_sgd", "update_adam"}
    fits = pd.read_csv(out / "mup" / "fits.csv").set_index(["diagnostic", "metric"])
    row = corrections.set_index(["parameterization", "quantity"]).loc[("mup", "comb")]
    assert row.exponent == pytest.approx(fits.loc[("dynamic_sensitivity", "dc_x_mean")].exponent, rel=1e-12)
    assert f"{row.exponent:+.2f} [{row.ci_low:+.2f}, {row.ci_high:+.2f}]" in printed
    chain = pd.read_csv(out / "chain.csv")
    assert {"d=32", "d=64", "d=128", "exponent", "ci_low", "ci_high"} <= set(chain.columns)
    assert len(chain) == 3 * 8
    verdicts = json.loads((out / "verdict.json").read_text())["verdicts"]
    assert set(verdicts) == {"baseline", "mup", "slow"}
    assert verdicts["baseline"]["conditions"][3]["status"] == "fail"
    results = json.loads((out / "slow" / "results.json").read_text())
    assert results["config"]["parameterization"]["rules"]["lr_fn_sgd"] == "1/(n_s*d)"
    assert results["parameterization"]["evaluated"]["64"]["lr"]["sgd"]["fn"] == 1 / 256
    back = SweepConfig.from_dict(results["config"])
    assert back.parameterization == parse_spec("slow: from=mup, lr_fn=1/(n_s*d)")
    assert dataclasses.replace(back, parameterization=PARAMETERIZATIONS["mup"]).widths == (32, 64, 128)
    assert "Theorem D per parameterization" in printed
