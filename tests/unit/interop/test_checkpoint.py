"""Reading a checkpoint's mHC tensors and inspecting them: both namings, single and sharded files, only the mHC
tensors read, every column its definition. The ``mhc-mup inspect`` command is tested in tests/cli/test_interop.py."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from mhc_mup.interop import checkpoint as ckpt
from mhc_mup.interop.adapters import V4Params
from mhc_mup.interop.checkpoint import CheckpointError, locate
from mhc_mup.interop.inspection import COLUMNS, inspect_checkpoint, inspection_csv
from mhc_mup.mhc.ops import sinkhorn_knopp
from tests.unit.interop.checkpoints import LAYERS, N_S, D, hc_tensors, named, write


@pytest.fixture
def tensors() -> dict:
    return hc_tensors(torch.Generator().manual_seed(0))


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
