"""The ``inspect`` and ``adapter`` commands: what they print and write, and one clean error (exit 2, the culprit
named, nothing written) per kind of bad input. The readers and adapters themselves are tested in tests/unit/interop."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from mhc_mup.cli import main
from mhc_mup.interop.adapters import V4Params
from tests.unit.interop.checkpoints import N_S, ROWS, D, hc_tensors, named, write


@pytest.fixture
def tensors() -> dict:
    return hc_tensors(torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip(
        "transformers", reason="transformers is an optional extra: pip install mhc-mup[adapters]"
    )


@pytest.fixture(scope="module")
def hc_pkg():
    return pytest.importorskip(
        "hyper_connections", reason="hyper-connections is an optional extra: pip install mhc-mup[adapters]"
    )


def rows_of(text: str) -> list[dict]:
    return list(csv.DictReader(text.splitlines()))


# ── adapter ────────────────────────────────────────────────────────────────────────────────────
def test_adapter_command_without_the_extra_says_what_to_install(monkeypatch, tmp_path, capsys):
    import importlib

    real = importlib.import_module

    def absent(name, *args, **kwargs):
        if name.startswith(("transformers", "hyper_connections")):
            raise ImportError(f"No module named '{name}'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", absent)
    out = tmp_path / "out"
    for impl in ("transformers", "hyper-connections"):
        assert main(["adapter", impl, "--widths", "16,32", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "pip install mhc-mup[adapters]" in err, err
    assert not out.exists()


def test_adapter_command_rejects_one_width(tmp_path, capsys):
    assert main(["adapter", "transformers", "--widths", "64", "--out", str(tmp_path / "o")]) == 2
    assert "at least 2 distinct widths" in capsys.readouterr().err


def test_adapter_command_on_transformers(tf, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["adapter", "transformers", "--widths", "16,32,64", "--samples", "4", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "dc_x_mean scales as d^" in text
    assert sorted(p.name for p in out.iterdir()) == ["adapter_fits.csv", "adapter_results.csv"]


def test_adapter_command_on_hyper_connections_reports_zero_sensitivity(hc_pkg, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["adapter", "hyper-connections", "--widths", "16,32", "--samples", "3", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "dc_x_mean scales as no fit: statistic not positive" in text


# ── inspect: a real transformers checkpoint ─────────────────────────────────────────────────────────────
@pytest.fixture(scope="module")
def tiny_v4(tmp_path_factory):
    pytest.importorskip("transformers", reason="transformers is an optional extra: pip install mhc-mup[adapters]")
    from transformers import DeepseekV4ForCausalLM

    from mhc_mup.interop.adapters import tiny_deepseek_v4_config

    torch.manual_seed(0)
    model = DeepseekV4ForCausalLM(tiny_deepseek_v4_config(n_s=4, d=32, n_layers=3))
    with torch.no_grad():  # move base and scale off transformers' init (0 and 1) so a mix-up would show
        for layer in model.model.layers:
            for hc in (layer.attn_hc, layer.ffn_hc):
                hc.base.normal_()
                hc.scale.uniform_(0.1, 2.0)
    root = tmp_path_factory.mktemp("tiny_v4")
    model.save_pretrained(root / "single")
    model.save_pretrained(root / "sharded", max_shard_size="20KB")
    return model, root


def test_inspect_on_a_saved_transformers_model(tiny_v4, tmp_path, capsys):
    model, root = tiny_v4
    assert (root / "sharded" / "model.safetensors.index.json").exists()
    out = tmp_path / "out"
    assert main(["inspect", str(root / "single"), "--samples", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3 layers, n_s = 4, d = 32, K = 20" in printed
    assert sorted(p.name for p in out.iterdir()) == ["inspect.csv", "inspect.json", "inspect.png"]
    assert (out / "inspect.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    summary = json.loads((out / "inspect.json").read_text())
    assert summary["hc_tensors_read"] == 3 * 2 * 3 + 3
    rows = rows_of((out / "inspect.csv").read_text())
    states = torch.randn(4, 4, 32, generator=torch.Generator().manual_seed(0))
    for r in rows[:-1]:
        module = getattr(model.model.layers[int(r["layer"])], f"{r['sublayer']}_hc")
        params = V4Params.from_transformers(module)
        assert float(r["scale_post"]) == pytest.approx(float(params.scale[1]), rel=1e-7)
        norms = params.gate_jacobian_norms(states)
        assert float(r["dq_x_mean"]) == pytest.approx(
            float((norms.post * states.flatten(1).norm(dim=1)).mean()), rel=1e-6
        )
    sharded = tmp_path / "sharded_out"
    assert main(["inspect", str(root / "sharded"), "--samples", "4", "--out", str(sharded), "-q"]) == 0
    assert (sharded / "inspect.csv").read_text() == (out / "inspect.csv").read_text()


# ── bad input: one line, exit 2, the culprit named, nothing written ─────────────────────────────
def _fails(args: list[str], out: Path, capsys, *needles: str) -> None:
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mhc-mup: error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err
    assert not out.exists()


def test_missing_tensor(tmp_path, tensors, capsys):
    state = named(tensors, "deepseek")
    del state["layers.1.hc_ffn_scale"]
    path = write(tmp_path / "model.safetensors", state)
    _fails(["inspect", str(path)], tmp_path / "out", capsys, "missing tensor 'layers.1.hc_ffn_scale'")


def test_missing_head_tensor(tmp_path, tensors, capsys):
    state = named(tensors, "transformers")
    del state["model.hc_head.hc_base"]
    path = write(tmp_path / "model.safetensors", state)
    _fails(["inspect", str(path)], tmp_path / "out", capsys, "missing tensor 'model.hc_head.hc_base'")


@pytest.mark.parametrize("name", ["layers.0.hc_attn_fn", "layers.2.hc_ffn_fn"])
def test_wrong_shape(tmp_path, tensors, capsys, name):
    """The odd tensor is named, even when it is the first one (n_s and d come from the shape most fn agree on)."""
    state = named(tensors, "deepseek")
    state[name] = torch.zeros(ROWS, N_S * D + 4)
    path = write(tmp_path / "model.safetensors", state)
    needles = (f"tensor '{name}' has shape (24, 68)", "expected (24, 64)")
    _fails(["inspect", str(path)], tmp_path / "out", capsys, *needles)


def test_wrong_scale_shape(tmp_path, tensors, capsys):
    state = named(tensors, "transformers")
    state["model.layers.1.attn_hc.scale"] = torch.ones(4)
    path = write(tmp_path / "model.safetensors", state)
    _fails(["inspect", str(path)], tmp_path / "out", capsys, "'model.layers.1.attn_hc.scale' has shape (4,)", "(3,)")


def test_shape_against_config_json(tmp_path, tensors, capsys):
    write(tmp_path / "ckpt" / "model.safetensors", named(tensors, "deepseek"))
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps({"hc_mult": N_S, "hidden_size": 2 * D}))
    _fails(["inspect", str(tmp_path / "ckpt")], tmp_path / "out", capsys, "'layers.0.hc_attn_fn'", "config.json")


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_value(tmp_path, tensors, capsys, bad):
    state = named(tensors, "transformers")
    state["model.layers.0.ffn_hc.base"][5] = bad
    path = write(tmp_path / "model.safetensors", state)
    _fails(["inspect", str(path)], tmp_path / "out", capsys, "tensor 'model.layers.0.ffn_hc.base' has 1 non-finite")


def test_unknown_naming(tmp_path, capsys):
    path = write(tmp_path / "model.safetensors", {"encoder.weight": torch.zeros(3, 3)})
    _fails(["inspect", str(path)], tmp_path / "out", capsys, "no mHC tensors", "layers.0.hc_attn_fn")


def test_nonexistent_path(tmp_path, capsys):
    _fails(["inspect", str(tmp_path / "nowhere")], tmp_path / "out", capsys, "does not exist", "nowhere")


def test_not_a_safetensors_file(tmp_path, capsys):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"this is not a safetensors header")
    _fails(["inspect", str(path)], tmp_path / "out", capsys, "is not a safetensors file", str(path))


def test_index_pointing_to_a_missing_shard(tmp_path, tensors, capsys):
    state = named(tensors, "deepseek")
    index = {"weight_map": dict.fromkeys(state, "model-00001-of-00001.safetensors")}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    _fails(["inspect", str(tmp_path)], tmp_path / "out", capsys, "model-00001-of-00001.safetensors", "does not exist")


def test_bad_index_json(tmp_path, capsys):
    (tmp_path / "model.safetensors.index.json").write_text("{not json")
    _fails(["inspect", str(tmp_path)], tmp_path / "out", capsys, "model.safetensors.index.json", "weight_map")


def test_output_path_is_a_file(tmp_path, tensors, capsys):
    path = write(tmp_path / "model.safetensors", named(tensors, "deepseek"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["inspect", str(path), "--out", str(blocker)]) == 2
    assert "is a file" in capsys.readouterr().err
