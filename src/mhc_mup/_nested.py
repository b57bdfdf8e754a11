"""Nested configuration dataclasses seen by their leaves' own names.

A configuration is a tree of frozen dataclasses (the sweep's :class:`~mhc_mup.diagnostics.config.SweepConfig`,
the training experiments' configs). :func:`flat_fields` lists its leaves as one ``{name: value}`` dict (what
a results file or a sweep folder stores), :func:`replace_leaves` changes leaves by name, rebuilding (and so
validating) only the parts they live in, and :class:`FlatView` reads them back as attributes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["LEAF", "FlatView", "flat_fields", "replace_leaves"]

T = TypeVar("T")

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

    def __getattr__(self, name: str) -> Any:  # a leaf of any type, found by name at run time
        if name.startswith("_") or not dataclasses.is_dataclass(self):
            raise AttributeError(name)
        leaves = flat_fields(self)
        if name not in leaves:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return leaves[name]

    def with_leaves(self: T, **changes: object) -> T:
        """:func:`replace_leaves`: a copy with the named leaves replaced (``cfg.with_leaves(steps=3, n_s=2)``)."""
        return replace_leaves(self, changes)
