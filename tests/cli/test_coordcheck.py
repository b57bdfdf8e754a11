"""``mhc-mup coordcheck``: the three files written, the table printed, bad input as one line with exit code 2 and
nothing written, every flag reaching its place in the configuration."""

from __future__ import annotations

import pandas as pd
import pytest

from mhc_mup.cli import main
from mhc_mup.training.coordcheck import COORD_COLUMNS

FAST = ["--widths", "16,32", "--steps", "2", "--seeds", "1", "--depth", "1", "--batch-size", "2",
        "--seq-len", "16", "--bootstrap", "20"]  # fmt: skip


def test_cli_writes_the_three_files(small_corpus_folder, tmp_path, capsys):
    out = tmp_path / "cc"
    assert main(["coordcheck", *FAST, "--corpus", str(small_corpus_folder), "--param", "baseline", "--sp",
                 "--out", str(out)]) == 0  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["coord.csv", "coord.png", "exponents.csv"]
    coords = pd.read_csv(out / "coord.csv")
    assert list(coords.columns) == list(COORD_COLUMNS) and set(coords.width) == {16, 32}
    exps = pd.read_csv(out / "exponents.csv")
    assert {"comb logits", "residual stream"} <= set(exps.query("level == 'kind'").name)
    assert (out / "coord.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = " ".join(capsys.readouterr().out.split())  # tables wrap long titles
    assert "comb logits" in printed and "model sp, mHC generator baseline" in printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--corpus", "/no/such/corpus"], "corpus '/no/such/corpus' does not exist"),
        (["--corpus", "EMPTY_DIR"], "has no text files"),
        (["--corpus", "EMPTY_FILE"], "is empty"),
        (["--widths", "16,30"], "width 30 must be a positive multiple of heads=4"),
        (["--widths", "16"], "at least 2 distinct widths"),
        (["--lr", "-1"], "lr must be a positive finite number, got '-1'"),
        (["--param", "nope"], "unknown parameterization 'nope'"),
        (["--model-param", "xp"], "invalid choice: 'xp'"),
        (["--sp", "--mup"], "not allowed with argument"),
        (["--seq-len", "20000"], "needs at least 20001"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_nothing_written(args, message, small_corpus_folder, tmp_path, capsys):
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    (tmp_path / "empty.txt").write_text("")
    args = [{"EMPTY_DIR": str(empty_dir), "EMPTY_FILE": str(tmp_path / "empty.txt")}.get(a, a) for a in args]
    if "--corpus" not in args:
        args += ["--corpus", str(small_corpus_folder)]
    out = tmp_path / "out"
    assert main(["coordcheck", *FAST, *args, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_quick_and_explicit_flags_build_the_configuration():
    from mhc_mup.cli.app import build_parser
    from mhc_mup.cli.coordcheck import coordcheck_config

    quick = coordcheck_config(build_parser().parse_args(["coordcheck", "--quick"]))
    assert quick.widths == (32, 64, 128, 256) and quick.seeds == 2 and quick.recipe.steps == 5
    assert quick.fit.n_boot == 300 and quick.lr == 1e-2 and quick.hc_param.name == "mup" and not quick.control
    args = ["coordcheck", "--widths", "8,16", "--steps", "3", "--seeds", "4", "--depth", "3", "--heads", "2",
            "--n-s", "3", "-K", "7", "--batch-size", "5", "--seq-len", "9", "--optimizer", "sgd", "--sp",
            "--param", "baseline", "--base-width", "8", "--control", "--device", "cpu", "--tolerance", "0.3",
            "--bootstrap", "12"]  # fmt: skip
    cfg = coordcheck_config(build_parser().parse_args(args))
    assert (cfg.widths, cfg.seeds, cfg.recipe.steps, cfg.recipe.batch_size, cfg.recipe.seq_len) == ((8, 16), 4, 3, 5, 9)
    assert (cfg.model.depth, cfg.model.heads, cfg.model.mhc.n_s, cfg.model.mhc.K) == (3, 2, 3, 7)
    assert (cfg.recipe.optimizer, cfg.lr, cfg.model_param, cfg.hc_param.name) == ("sgd", 0.1, "sp", "baseline")
    assert (cfg.base_d, cfg.control, cfg.device, cfg.tolerance, cfg.fit.n_boot) == (8, True, "cpu", 0.3, 12)
