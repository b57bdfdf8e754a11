"""Reading a DeepSeek-V4-style checkpoint's mHC parameters — and only those — from safetensors.

Namings in use (``P`` an optional prefix such as ``model.``; ``N`` the layer; ``S`` ``attn`` or ``ffn``):

* transformers' modules: ``P layers.N.S_hc.fn|base|scale`` and ``P hc_head.hc_fn|hc_base|hc_scale``;
* DeepSeek's release: ``P layers.N.hc_S_fn|base|scale`` and ``P hc_head_fn|base|scale``.

(transformers ≥ 5.9 writes the release's layer names under ``model.`` with its own head names: both
are recognised independently.) Multi-token-prediction layers (``mtp.…``) are not part of the residual
stack and are ignored.

A checkpoint is a ``.safetensors`` file, a ``*.safetensors.index.json`` (sharded) or a directory holding
either. Tensors are opened with ``safetensors.safe_open`` (memory-mapped): shapes and dtypes are checked
from the headers, then each sublayer's three tensors are read, used and dropped, so the memory needed is
one sublayer's hc parameters — never the model. Every problem raises :class:`CheckpointError` naming the
file or tensor.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from mhc_mup.errors import CheckpointError
from mhc_mup.interop.adapters import V4HeadParams, V4Params, streams_from_rows
from mhc_mup.mhc.ops import HC_EPS, NORM_EPS

SUBLAYERS = ("attn", "ffn")
PARTS = ("fn", "base", "scale")
FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}

_PREFIX = r"^(?P<prefix>(?:.+\.)?)"
_PART = r"(?P<part>fn|base|scale)$"
_SUBLAYER_PATTERNS = {
    "transformers": re.compile(_PREFIX + r"layers\.(?P<layer>\d+)\.(?P<sub>attn|ffn)_hc\." + _PART),
    "deepseek": re.compile(_PREFIX + r"layers\.(?P<layer>\d+)\.hc_(?P<sub>attn|ffn)_" + _PART),
}
_HEAD_PATTERNS = {
    "transformers": re.compile(_PREFIX + r"hc_head\.hc_" + _PART),
    "deepseek": re.compile(_PREFIX + r"hc_head_" + _PART),
}
_SUBLAYER_FORMATS = {
    "transformers": "{p}layers.{layer}.{sub}_hc.{part}",
    "deepseek": "{p}layers.{layer}.hc_{sub}_{part}",
}
_HEAD_FORMATS = {"transformers": "{p}hc_head.hc_{part}", "deepseek": "{p}hc_head_{part}"}


@dataclass(frozen=True)
class HCSettings:
    """Numerics of the checkpoint's mHC: Sinkhorn iterations and the two eps, and where each came from."""

    K: int = 20
    hc_eps: float = HC_EPS
    norm_eps: float = NORM_EPS
    source: dict[str, str] = field(default_factory=dict)


@dataclass
class HCLayout:
    """Where a checkpoint's mHC tensors live: names per (layer, sublayer, part), their files, and shapes."""

    path: Path
    files: dict[str, Path]  # tensor name → safetensors file
    naming: str  # e.g. "deepseek layers, transformers head, prefix 'model.'"
    n_layers: int
    n_s: int
    d: int
    sublayer_names: dict[tuple[int, str], dict[str, str]]  # (layer, "attn"|"ffn") → part → tensor name
    head_names: dict[str, str] | None  # part → tensor name, or None if the checkpoint has no hc head
    config: dict[str, Any]

    @property
    def names(self) -> list[str]:
        """Every mHC tensor name, in reading order."""
        out = [n for parts in self.sublayer_names.values() for n in parts.values()]
        return out + (list(self.head_names.values()) if self.head_names else [])


# ── files ──────────────────────────────────────────────────────────────────────────────────────
def _tensor_files(path: Path) -> tuple[dict[str, Path], Path]:
    """All tensor names → their file, and the directory holding config.json (if any)."""
    if not path.exists():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    if path.is_dir():
        index = path / "model.safetensors.index.json"
        single = path / "model.safetensors"
        if index.is_file():
            return _from_index(index), path
        if single.is_file():
            return _from_files([single]), path
        indexes = sorted(path.glob("*.safetensors.index.json"))
        if len(indexes) == 1:
            return _from_index(indexes[0]), path
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise CheckpointError(f"no .safetensors file or index in directory '{path}'")
        return _from_files(files), path
    if path.name.endswith(".json"):
        return _from_index(path), path.parent
    return _from_files([path]), path.parent


def _from_index(index: Path) -> dict[str, Path]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not an object")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"'{index}' is not a safetensors index with a weight_map ({exc})") from None
    return {name: index.parent / shard for name, shard in weight_map.items()}


def _open(file: Path, stack: ExitStack) -> Any:
    if not file.is_file():
        raise CheckpointError(f"checkpoint file '{file}' does not exist")
    try:
        return stack.enter_context(safe_open(str(file), framework="pt"))
    except Exception as exc:  # safetensors raises its own SafetensorError, or OSError
        raise CheckpointError(f"'{file}' is not a safetensors file ({exc})") from None


def _from_files(files: list[Path]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    with ExitStack() as stack:
        for file in files:
            out.update(dict.fromkeys(_open(file, stack).keys(), file))
    return out


def _read_config(directory: Path) -> dict[str, Any]:
    file = directory / "config.json"
    if not file.is_file():
        return {}
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"'{file}' is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"'{file}' is not a JSON object")
    return config


# ── naming ─────────────────────────────────────────────────────────────────────────────────────
def _match(names: list[str], patterns: dict[str, re.Pattern]) -> dict[str, list[re.Match]]:
    found: dict[str, list[re.Match]] = {}
    for name in names:
        for style, pattern in patterns.items():
            m = pattern.match(name)
            if m and not m["prefix"].startswith("mtp."):
                found.setdefault(style, []).append(m)
    return found


def _one(found: dict[str, list[re.Match]], what: str) -> tuple[str, str, list[re.Match]] | None:
    if not found:
        return None
    if len(found) > 1:
        examples = ", ".join(f"'{ms[0].string}'" for ms in found.values())
        raise CheckpointError(f"{what} tensors in both namings ({examples}): cannot tell which to inspect")
    style, matches = next(iter(found.items()))
    prefixes = sorted({m["prefix"] for m in matches})
    if len(prefixes) > 1:
        raise CheckpointError(f"{what} tensors under several prefixes ({', '.join(map(repr, prefixes))})")
    return style, prefixes[0], matches


def locate(path: str | Path) -> HCLayout:
    """Find and check the mHC tensors of the checkpoint at ``path`` without reading any tensor data.

    Checks: every layer 0…L−1 has fn, base and scale for attn and ffn; the head (if present) has all
    three; shapes are ``fn ((2+n)·n, n·d)``, ``base ((2+n)·n,)``, ``scale (3,)`` and ``(n, n·d)``,
    ``(n,)``, ``(1,)`` for the head, with ``n``, ``d`` from config.json when it gives them and from the
    first layer otherwise; dtypes are floating point.
    """
    path = Path(path)
    files, directory = _tensor_files(path)
    names = list(files)
    sub = _one(_match(names, _SUBLAYER_PATTERNS), "layer mHC")
    if sub is None:
        raise CheckpointError(
            f"no mHC tensors in '{path}': expected transformers' naming ('model.layers.0.attn_hc.fn', "
            f"'model.hc_head.hc_fn') or DeepSeek's ('layers.0.hc_attn_fn', 'hc_head_fn')"
        )
    style, prefix, matches = sub
    n_layers = 1 + max(int(m["layer"]) for m in matches)
    sublayer_names = {
        (layer, s): {part: _SUBLAYER_FORMATS[style].format(p=prefix, layer=layer, sub=s, part=part) for part in PARTS}
        for layer in range(n_layers)
        for s in SUBLAYERS
    }
    head = _one(_match(names, _HEAD_PATTERNS), "head mHC")
    head_names = None
    naming = f"{style} layers"
    if head is not None:
        head_style, head_prefix, _ = head
        head_names = {part: _HEAD_FORMATS[head_style].format(p=head_prefix, part=part) for part in PARTS}
        naming += f", {head_style} head"
    naming += f", prefix '{prefix}'" if prefix else ""
    for parts in [*sublayer_names.values(), *([head_names] if head_names else [])]:
        for name in parts.values():
            if name not in files:
                raise CheckpointError(f"missing tensor '{name}' in '{path}'")
    config = _read_config(directory)
    layout = HCLayout(path, files, naming, n_layers, 0, 0, sublayer_names, head_names, config)
    _check_headers(layout)
    return layout


def _check_headers(layout: HCLayout) -> None:
    """Shapes and dtypes from the safetensors headers; sets ``layout.n_s`` and ``layout.d``."""
    with ExitStack() as stack:
        handles: dict[Path, Any] = {}

        def header(name: str) -> tuple[tuple[int, ...], str]:
            file = layout.files[name]
            if file not in handles:
                handles[file] = _open(file, stack)
            try:
                info = handles[file].get_slice(name)
            except Exception as exc:
                raise CheckpointError(f"tensor '{name}' cannot be read from '{file}' ({exc})") from None
            return tuple(info.get_shape()), info.get_dtype()

        n_s = _config_int(layout.config, ("hc_mult",))
        d = _config_int(layout.config, ("hidden_size", "dim"))
        origin = "config.json"
        if not (n_s and d):
            fn_names = [parts["fn"] for parts in layout.sublayer_names.values()]
            head_fn = [layout.head_names["fn"]] if layout.head_names else []
            votes = Counter(
                shape for name in fn_names + head_fn if (shape := _stream_shape(header(name)[0], name in head_fn))
            )
            if not votes:
                first = fn_names[0]
                raise CheckpointError(
                    f"tensor '{first}' has shape {header(first)[0]}, expected ((2+n_s)·n_s, n_s·d) for some n_s, d"
                )
            (n_s, d), count = votes.most_common(1)[0]
            origin = f"{count} of {len(fn_names) + len(head_fn)} fn tensors"
        rows = (2 + n_s) * n_s
        expected = {"fn": (rows, n_s * d), "base": (rows,), "scale": (3,)}
        checks = [(name, expected[part]) for parts in layout.sublayer_names.values() for part, name in parts.items()]
        if layout.head_names:
            head_expected = {"fn": (n_s, n_s * d), "base": (n_s,), "scale": (1,)}
            checks += [(name, head_expected[part]) for part, name in layout.head_names.items()]
        for name, want in checks:
            got, dtype = header(name)
            if got != want:
                raise CheckpointError(
                    f"tensor '{name}' has shape {got}, expected {want} (n_s = {n_s}, d = {d} from {origin})"
                )
            if dtype not in FLOAT_DTYPES:
                raise CheckpointError(f"tensor '{name}' has dtype {dtype}, expected a floating-point dtype")
        layout.n_s, layout.d = n_s, d


def _stream_shape(shape: tuple[int, ...], head: bool) -> tuple[int, int] | None:
    """``(n_s, d)`` implied by an fn shape (``((2+n)·n, n·d)``, or ``(n, n·d)`` for the head), or None."""
    if len(shape) != 2 or shape[0] < 1:
        return None
    try:
        n = shape[0] if head else streams_from_rows(shape[0])
    except ValueError:
        return None
    return (n, shape[1] // n) if shape[1] % n == 0 and shape[1] > 0 else None


def _config_int(config: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def settings(
    layout: HCLayout, K: int | None = None, hc_eps: float | None = None, norm_eps: float | None = None
) -> HCSettings:
    """K, hc_eps and norm_eps: the argument if given, else config.json's (``hc_sinkhorn_iters``, ``hc_eps``,
    ``rms_norm_eps``/``norm_eps``), else V4's (20, 1e-6, 1e-6)."""
    cfg = layout.config
    chosen: dict[str, Any] = {}
    source: dict[str, str] = {}
    for name, given, keys, default in (
        ("K", K, ("hc_sinkhorn_iters",), 20),
        ("hc_eps", hc_eps, ("hc_eps",), HC_EPS),
        ("norm_eps", norm_eps, ("rms_norm_eps", "norm_eps"), NORM_EPS),
    ):
        from_config = next(((k, cfg[k]) for k in keys if isinstance(cfg.get(k), (int, float))), None)
        if given is not None:
            chosen[name], source[name] = given, "argument"
        elif from_config is not None:
            chosen[name], source[name] = from_config[1], f"config.json {from_config[0]}"
        else:
            chosen[name], source[name] = default, "V4 default"
    return HCSettings(int(chosen["K"]), float(chosen["hc_eps"]), float(chosen["norm_eps"]), source)


# ── values ─────────────────────────────────────────────────────────────────────────────────────
class TensorReader:
    """Reads single tensors lazily from the checkpoint's files (opened once, memory-mapped), as fp32,
    raising :class:`CheckpointError` for a tensor with non-finite values."""

    def __init__(self, layout: HCLayout) -> None:
        self.layout = layout
        self._stack = ExitStack()
        self._handles: dict[Path, Any] = {}

    def __enter__(self) -> TensorReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def read(self, name: str) -> torch.Tensor:
        file = self.layout.files[name]
        if file not in self._handles:
            self._handles[file] = _open(file, self._stack)
        try:
            tensor = self._handles[file].get_tensor(name)
        except Exception as exc:
            raise CheckpointError(f"tensor '{name}' cannot be read from '{file}' ({exc})") from None
        tensor = tensor.to(torch.float32)
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            raise CheckpointError(f"tensor '{name}' has {bad} non-finite value{'s' if bad > 1 else ''} (nan or inf)")
        return tensor


def iter_sublayers(layout: HCLayout, hc: HCSettings) -> Iterator[tuple[int, str, V4Params]]:
    """``(layer, "attn"|"ffn", V4Params)`` in forward order, reading one sublayer's tensors at a time."""
    with TensorReader(layout) as reader:
        for (layer, sub), parts in layout.sublayer_names.items():
            fn, base, scale = (reader.read(parts[p]) for p in PARTS)
            yield layer, sub, V4Params(fn, base, scale, hc.K, hc.hc_eps, hc.norm_eps)


def read_head(layout: HCLayout, hc: HCSettings) -> V4HeadParams | None:
    """The head's pre-only gate parameters, or None if the checkpoint has no hc head."""
    if layout.head_names is None:
        return None
    with TensorReader(layout) as reader:
        fn, base, scale = (reader.read(layout.head_names[p]) for p in PARTS)
    return V4HeadParams(fn, base, scale, hc.hc_eps, hc.norm_eps)
