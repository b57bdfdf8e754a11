"""The configuration the training experiments share: the model's shape apart from its width, and the
training recipe. The coordinate check and the transfer sweep nest these; each validates itself on
construction (:class:`~mhc_mup.errors.ConfigError` naming the bad value).

``flat_fields`` turns a tree of these dataclasses into one ``{name: value}`` dict: what identifies a
transfer sweep's folder is derived from it, not listed by hand.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from mhc_mup.errors import ConfigError
from mhc_mup.mhc.parameterizations import OPTIMIZERS
from mhc_mup.mhc.presets import MHCShape
from mhc_mup.training.model import ModelConfig

__all__ = ["LEAF", "FlatView", "ModelShape", "TrainingRecipe", "check_at_least", "flat_fields", "replace_leaves"]

T = TypeVar("T")


def check_at_least(owner: object, minimum: int, names: Iterable[str]) -> None:
    """:class:`ConfigError` ``"NAME must be >= MINIMUM, got VALUE"`` for the first of ``names`` below ``minimum``."""
    for name in names:
        value = getattr(owner, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{name} must be >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class ModelShape:
    """:class:`~mhc_mup.training.model.MHCLM`'s shape apart from its width: ``depth`` blocks of ``heads``-head
    attention and an MLP, on the mHC residual ``mhc`` (``n_s`` streams, ``K`` Sinkhorn iterations, the eps)."""

    depth: int = 2
    heads: int = 4
    mhc: MHCShape = field(default_factory=MHCShape)

    def __post_init__(self) -> None:
        check_at_least(self, 1, ("depth", "heads"))

    def check_widths(self, widths: Iterable[int]) -> None:
        """:class:`ConfigError` for the first width that is not a positive multiple of ``heads``."""
        for w in widths:
            if isinstance(w, bool) or not isinstance(w, int) or w < 1 or w % self.heads:
                raise ConfigError(f"width {w} must be a positive multiple of heads={self.heads}")

    def model_config(self, width: int, hc: bool = True, stream_dtype: str = "float32") -> ModelConfig:
        """The model at ``width``: mHC (``hc``) or the plain-residual control, streams stored as ``stream_dtype``."""
        m = self.mhc
        return ModelConfig(d=width, depth=self.depth, heads=self.heads, n_s=m.n_s, K=m.K, hc=hc,
                           hc_eps=m.hc_eps, norm_eps=m.norm_eps, stream_dtype=stream_dtype)  # fmt: skip


@dataclass(frozen=True)
class TrainingRecipe:
    """How the model is trained: ``steps`` steps of ``optimizer`` on ``batch_size × seq_len``-byte batches
    drawn from the corpus with RNG seed ``data_seed``."""

    steps: int = 200
    batch_size: int = 16
    seq_len: int = 128
    optimizer: str = "adam"
    data_seed: int = 0

    def __post_init__(self) -> None:
        check_at_least(self, 1, ("steps", "batch_size", "seq_len"))
        check_at_least(self, 0, ("data_seed",))
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")


LEAF = {"leaf": True}
"""Field metadata of a dataclass-valued field that is one value, not a part of the configuration
(``field(metadata=LEAF)``): :func:`flat_fields` does not look inside it."""


def _parts(config: object) -> list[tuple[str, object, bool]]:
    """``(name, value, is a nested part)`` of each field of ``config``."""
    return [
        (f.name, value, dataclasses.is_dataclass(value) and not f.metadata.get("leaf", False))
        for f in dataclasses.fields(config)  # type: ignore[arg-type]
        for value in (getattr(config, f.name),)
    ]


def flat_fields(config: object) -> dict:
    """The leaves of a tree of dataclasses, ``{field name: value}`` in field order (nested parts in place).

    Leaf names must be unique across the tree: a clash is a programming error (``ValueError``)."""
    flat: dict = {}
    for name, value, nested in _parts(config):
        leaves = flat_fields(value) if nested else {name: value}
        clash = set(flat) & set(leaves)
        if clash:
            raise ValueError(f"{type(config).__name__}: field name(s) {sorted(clash)} appear twice")
        flat |= leaves
    return flat


def replace_leaves(config: T, changes: Mapping[str, object]) -> T:
    """``config`` with the leaves named in ``changes`` (names as :func:`flat_fields` gives them) replaced; each
    part is rebuilt, and so validated, only when one of its leaves changes. ``ValueError`` for a name that is
    no leaf of ``config``."""
    unknown = sorted(set(changes) - set(flat_fields(config)))
    if unknown:
        raise ValueError(f"{type(config).__name__} has no setting {', '.join(unknown)}")
    new = {}
    for name, value, nested in _parts(config):
        if nested and changes.keys() & flat_fields(value).keys():
            new[name] = replace_leaves(value, {k: v for k, v in changes.items() if k in flat_fields(value)})
        elif not nested and name in changes:
            new[name] = changes[name]
    return dataclasses.replace(config, **new) if new else config  # type: ignore[type-var]


class FlatView:
    """A nested configuration seen by its leaves' own names: ``cfg.steps`` reads ``cfg.recipe.train.steps``
    (only names no field of the class has), ``cfg.with_leaves(steps=3)`` replaces it. For callers that set
    flags one by one (the command line) or were written against the flat configurations of the past; code
    that knows the tree reads the nested path."""

    def __getattr__(self, name: str) -> object:
        if name.startswith("_") or not dataclasses.is_dataclass(self):
            raise AttributeError(name)
        leaves = flat_fields(self)
        if name not in leaves:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return leaves[name]

    def with_leaves(self: T, **changes: object) -> T:
        """:func:`replace_leaves`: a copy with the named leaves replaced (``cfg.with_leaves(steps=3, n_s=2)``)."""
        return replace_leaves(self, changes)
