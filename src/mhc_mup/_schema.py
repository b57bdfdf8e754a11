"""Checking a JSON document we wrote against the shape we wrote it in, so that a damaged file is one line that
names the key, not a traceback deep in a report.

A shape is ``float`` (a number, or null: our writers store NaN and infinities as null), ``int``, ``str``,
``bool``, a dict ``{key: shape}`` (those keys must be there; others may be), :class:`MapOf` (a dict whose every
value has one shape), :class:`ListOf`, or :class:`Optional` (a key that may be absent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ListOf", "MapOf", "Optional", "first_problem"]


@dataclass(frozen=True)
class MapOf:
    """A dict with any keys, every value of shape ``value``."""

    value: Any


@dataclass(frozen=True)
class ListOf:
    """A list, every item of shape ``item``."""

    item: Any


@dataclass(frozen=True)
class Optional:
    """In a dict shape: a key that may be absent (when present, of shape ``shape``)."""

    shape: Any


_NAMES = {float: "a number", int: "an integer", str: "a string", bool: "true or false"}


def first_problem(value: Any, shape: Any, where: str = "") -> str:
    """``""`` when ``value`` has ``shape``, else the first mismatch: ``"results.32.dc_x_mean must be a number,
    got 'abc'"``."""
    if isinstance(shape, dict):
        return _dict_problem(value, shape, where)
    if isinstance(shape, MapOf):
        if not isinstance(value, dict):
            return _wrong(where, "an object", value)
        return next((p for k, v in value.items() if (p := first_problem(v, shape.value, _join(where, k)))), "")
    if isinstance(shape, ListOf):
        if not isinstance(value, list):
            return _wrong(where, "a list", value)
        return next((p for i, v in enumerate(value) if (p := first_problem(v, shape.item, _join(where, i)))), "")
    return "" if _is(value, shape) else _wrong(where, _NAMES[shape], value)


def _dict_problem(value: Any, shape: dict, where: str) -> str:
    if not isinstance(value, dict):
        return _wrong(where, "an object", value)
    for key, sub in shape.items():
        if isinstance(sub, Optional):
            if key in value and (problem := first_problem(value[key], sub.shape, _join(where, key))):
                return problem
        elif key not in value:
            return f"{_join(where, key)} is missing"
        elif problem := first_problem(value[key], sub, _join(where, key)):
            return problem
    return ""


def _is(value: Any, shape: type) -> bool:
    if shape is float:
        return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
    if shape is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, shape)


def _join(where: str, key: object) -> str:
    return f"{where}.{key}" if where else str(key)


def _wrong(where: str, expected: str, value: Any) -> str:
    shown = repr(value) if len(repr(value)) <= 40 else f"{type(value).__name__} {repr(value)[:37]}..."
    return f"{where or 'the document'} must be {expected}, got {shown}"
