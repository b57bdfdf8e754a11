"""``mhc-mup inspect``: both namings, single and sharded files, only the mHC tensors read, and one clean error
(exit 2, the tensor named, nothing written) per kind of bad checkpoint."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mhc_mup.cli import main
from mhc_mup.interop import checkpoint as ckpt
from mhc_mup.interop.adapters import V4Params
from mhc_mup.interop.checkpoint import CheckpointError, locate
from mhc_mup.interop.inspection import COLUMNS, inspect_checkpoint, inspection_csv
from mhc_mup.mhc.ops import sinkhorn_knopp

N_S, D, LAYERS = 4, 16, 3
ROWS = (2 + N_S) * N_S


def hc_tensors(gen: torch.Generator, n_layers: int = LAYERS, n_s: int = N_S, d: int = D) -> dict:
    """Random mHC parameters keyed (layer, sublayer, part), plus the head's under ("head", part)."""
    rows = (2 + n_s) * n_s
    out = {}
    for layer in range(n_layers):
        for sub in ("attn", "ffn"):
            out[(layer, sub, "fn")] = torch.randn(rows, n_s * d, generator=gen) * 0.1
            out[(layer, sub, "base")] = torch.randn(rows, generator=gen)
            out[(layer, sub, "scale")] = torch.rand(3, generator=gen) + 0.5
    out[("head", "fn")] = torch.randn(n_s, n_s * d, generator=gen) * 0.1
    out[("head", "base")] = torch.randn(n_s, generator=gen)
    out[("head", "scale")] = torch.rand(1, generator=gen)
    return out


def named(tensors: dict, naming: str) -> dict[str, torch.Tensor]:
    """The tensors under transformers' module names or DeepSeek's release names."""
    out = {}
    for key, t in tensors.items():
        if key[0] == "head":
            name = f"model.hc_head.hc_{key[1]}" if naming == "transformers" else f"hc_head_{key[1]}"
        else:
            layer, sub, part = key
            name = (
                f"model.layers.{layer}.{sub}_hc.{part}"
                if naming == "transformers"
                else f"layers.{layer}.hc_{sub}_{part}"
            )
        out[name] = t.contiguous()
    return out


@pytest.fixture
def tensors() -> dict:
    return hc_tensors(torch.Generator().manual_seed(0))


def write(path: Path, state: dict[str, torch.Tensor]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


def rows_of(text: str) -> list[dict]:
    return list(csv.DictReader(text.splitlines()))


# ── reading ────────────────────────────────────────────────────────────────────────────────────
def watched_safe_open(real_open, on_get_tensor):
    """A stand-in for ``safetensors.safe_open`` whose ``get_tensor(name)`` calls ``on_get_tensor(name, read)``
    (``read`` is the real one); headers and slices pass through."""

    class Watched:
        def __init__(self, *args, **kwargs):
            self._inner = real_open(*args, **kwargs)

        def __enter__(self):
            self._handle = self._inner.__enter__()
            return self

        def __exit__(self, *exc):
            return self._inner.__exit__(*exc)

        def keys(self):
            return self._handle.keys()

        def get_slice(self, name):
            return self._handle.get_slice(name)

        def get_tensor(self, name):
            return on_get_tensor(name, self._handle.get_tensor)

    return Watched


def test_both_namings_give_the_same_report(tmp_path, tensors):
    a = write(tmp_path / "tf" / "model.safetensors", named(tensors, "transformers"))
    b = write(tmp_path / "ds" / "model.safetensors", named(tensors, "deepseek"))
    ra, rb = inspect_checkpoint(a, samples=4), inspect_checkpoint(b, samples=4)
    assert ra.layout.naming == "transformers layers, transformers head, prefix 'model.'"
    assert rb.layout.naming == "deepseek layers, deepseek head"
    assert inspection_csv(ra) == inspection_csv(rb)
    assert (ra.layout.n_s, ra.layout.d, ra.layout.n_layers) == (N_S, D, LAYERS)


def test_report_values_are_the_definitions(tmp_path, tensors):
    """Each column recomputed from its definition on the tensors that were written."""
    path = write(tmp_path / "model.safetensors", named(tensors, "deepseek"))
    result = inspect_checkpoint(path, samples=5, seed=3)
    rows = rows_of(inspection_csv(result))
    assert list(rows[0]) == list(COLUMNS)
    assert [(r["layer"], r["sublayer"]) for r in rows] == [
        *((str(i), s) for i in range(LAYERS) for s in ("attn", "ffn")),
        ("", "head"),
    ]
    states = torch.randn(5, N_S, D, generator=torch.Generator().manual_seed(3))
    product = torch.eye(N_S, dtype=torch.float64)
    for r in rows[:-1]:
        key = (int(r["layer"]), r["sublayer"])
        fn, base, scale = (tensors[(*key, p)] for p in ("fn", "base", "scale"))
        comb_rows = fn[2 * N_S :].double()
        assert float(r["comb_row_norm_max"]) == pytest.approx(float(comb_rows.norm(dim=1).max()), rel=1e-12)
        assert float(r["post_fn_norm2"]) == pytest.approx(
            float(torch.linalg.svdvals(fn[N_S : 2 * N_S].double())[0]), rel=1e-10
        )
        assert float(r["scale_comb"]) == pytest.approx(float(scale[2]), rel=1e-7)
        C0 = sinkhorn_knopp(base[2 * N_S :].double().view(N_S, N_S))
        product = product @ C0
        assert float(r["static_comb_dist_identity"]) == pytest.approx(float((C0 - torch.eye(N_S)).norm()), rel=1e-10)
        assert float(r["depth_comb_sigma2"]) == pytest.approx(float(torch.linalg.svdvals(product)[1]), rel=1e-9)
        norms = V4Params(fn, base, scale).gate_jacobian_norms(states)
        dc = float((norms.comb * states.flatten(1).norm(dim=1)).mean())
        assert float(r["dc_x_mean"]) == pytest.approx(dc, rel=1e-6)
    head = rows[-1]
    assert head["comb_fn_norm2"] == "" and head["dc_x_mean"] == ""
    assert float(head["scale_pre"]) == pytest.approx(float(tensors[("head", "scale")]), rel=1e-7)
    assert float(head["dp_x_mean"]) > 0


def test_only_mhc_tensors_are_read(tmp_path, tensors, monkeypatch):
    """A 64 MiB non-mHC tensor sits in the file; the reader must never ask for it (a whole-file load would)."""
    state = named(tensors, "deepseek") | {"embed.weight": torch.zeros(4096, 4096)}
    path = write(tmp_path / "model.safetensors", state)
    requested: list[str] = []

    def record(name, read):
        requested.append(name)
        return read(name)

    monkeypatch.setattr(ckpt, "safe_open", watched_safe_open(ckpt.safe_open, record))
    monkeypatch.setattr("safetensors.torch.load_file", lambda *a, **k: pytest.fail("whole-file load"))
    result = inspect_checkpoint(path, samples=2)
    assert sorted(requested) == sorted(result.layout.names) == sorted(named(tensors, "deepseek"))
    assert result.summary()["hc_parameters"] == sum(t.numel() for t in tensors.values())


def test_sharded_checkpoint_by_index(tmp_path, tensors):
    state = named(tensors, "transformers")
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, keys in shards.items():
        write(tmp_path / "sharded" / shard, {k: state[k] for k in keys})
    index = {"metadata": {}, "weight_map": {k: shard for shard, keys in shards.items() for k in keys}}
    (tmp_path / "sharded" / "model.safetensors.index.json").write_text(json.dumps(index))
    single = write(tmp_path / "single" / "model.safetensors", state)
    expected = inspection_csv(inspect_checkpoint(single, samples=3))
    assert inspection_csv(inspect_checkpoint(tmp_path / "sharded", samples=3)) == expected
    assert (
        inspection_csv(inspect_checkpoint(tmp_path / "sharded" / "model.safetensors.index.json", samples=3)) == expected
    )


def test_config_json_sets_K_and_the_flag_overrides_it(tmp_path, tensors):
    write(tmp_path / "model.safetensors", named(tensors, "deepseek"))
    (tmp_path / "config.json").write_text(json.dumps({"hc_sinkhorn_iters": 3, "hc_mult": N_S, "hidden_size": D}))
    from_config = inspect_checkpoint(tmp_path, samples=2)
    assert from_config.settings.K == 3 and from_config.settings.source["K"] == "config.json hc_sinkhorn_iters"
    overridden = inspect_checkpoint(tmp_path, samples=2, K=20)
    assert overridden.settings.K == 20 and overridden.settings.source["K"] == "argument"
    assert from_config.rows[0]["static_comb_eps_K"] > overridden.rows[0]["static_comb_eps_K"]


# ── a real transformers checkpoint ─────────────────────────────────────────────────────────────
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


def test_locate_reads_no_tensor_data(tmp_path, tensors, monkeypatch):
    """Layout checks use headers only: a get_tensor call during locate() would fail this test."""
    path = write(tmp_path / "model.safetensors", named(tensors, "deepseek"))

    def refuse(name, read):
        raise AssertionError(f"tensor data read during locate(): {name}")

    monkeypatch.setattr(ckpt, "safe_open", watched_safe_open(ckpt.safe_open, refuse))
    layout = locate(path)
    assert len(layout.names) == 6 * LAYERS + 3
    with pytest.raises(CheckpointError, match="no mHC tensors"):
        locate(write(tmp_path / "other.safetensors", {"x": torch.zeros(2)}))
