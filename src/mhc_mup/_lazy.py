"""Lazy re-exports (PEP 562): a package names its public objects and the module each lives in, and a
module is imported the first time one of its names is used.

``import mhc_mup`` and ``mhc-mup --help`` then cost no torch, scipy or matplotlib import; ``from mhc_mup
import run_sweep`` imports exactly the modules ``run_sweep`` needs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, Iterable[str]], submodules: Iterable[str] = ()
) -> tuple[list[str], Callable[[str], object], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package``.

    ``exports`` maps the absolute name of each module to the public names it defines, as an import block
    would; ``submodules`` are modules of the package offered by name. A name must not also be a
    submodule's name: importing ``package.x`` sets the attribute ``x`` to the module, which would hide an
    exported object ``x``.
    """
    home = {name: module for module, names in exports.items() for name in names}
    submodules = tuple(submodules)
    clash = sorted(set(home) & set(submodules))
    if clash:
        raise ImportError(f"{package}: {clash} are both exported names and submodules")

    def __getattr__(name: str) -> object:
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        if name not in home:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home[name]), name)
        vars(importlib.import_module(package))[name] = value  # cache: the next lookup is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(importlib.import_module(package)), *home, *submodules})

    return sorted({*home, *submodules}), __getattr__, __dir__
