"""Lazy re-exports (PEP 562): a package names its public objects in an ``if TYPE_CHECKING:`` block of imports,
which type checkers and editors read as they are, and :func:`lazy_exports` reads the same block to import a
module the first time one of its names is used.

``import mhc_mup`` and ``mhc-mup --help`` then cost no torch, scipy or matplotlib import; ``from mhc_mup
import run_sweep`` imports exactly the modules ``run_sweep`` needs. The block is read from the ``__init__.py``
source, so an install must keep its sources (wheels and editable installs do; a ``.pyc``-only or zipped one
would not import).
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["lazy_exports", "type_checking_exports"]


def lazy_exports(
    package: str, init_file: str, submodules: Iterable[str] = ()
) -> tuple[list[str], Callable[[str], object], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package``, whose ``__init__.py`` is ``init_file``.

    Its public names are those its ``if TYPE_CHECKING:`` block imports (:func:`type_checking_exports`);
    ``submodules`` are modules of the package offered by name. A name must not also be a submodule's name:
    importing ``package.x`` sets the attribute ``x`` to the module, which would hide an exported object ``x``.
    """
    home = type_checking_exports(init_file)
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


def type_checking_exports(init_file: str | Path) -> dict[str, str]:
    """``name → module`` of each ``from module import name`` in the module-level ``if TYPE_CHECKING:`` block of
    ``init_file``. The block may hold only such imports, absolute and without ``as``: anything else there would
    be read by a type checker but not exported, so it is an ImportError naming the file and line."""
    path = Path(init_file)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    blocks = [node for node in tree.body if isinstance(node, ast.If) and _is_type_checking(node.test)]
    if len(blocks) != 1:
        raise ImportError(f"{path}: expected one module-level 'if TYPE_CHECKING:' block, found {len(blocks)}")
    home: dict[str, str] = {}
    for node in blocks[0].body:
        if not isinstance(node, ast.ImportFrom) or node.level or node.module is None or node.names[0].name == "*":
            raise ImportError(f"{path}:{node.lineno}: the TYPE_CHECKING block takes 'from package.module import "
                              "name' only")  # fmt: skip
        for alias in node.names:
            if alias.asname not in (None, alias.name):
                raise ImportError(f"{path}:{node.lineno}: '{alias.name} as {alias.asname}' is not exported as it reads")
            if home.setdefault(alias.name, node.module) != node.module:
                raise ImportError(f"{path}:{node.lineno}: {alias.name} is imported from two modules")
    return home


def _is_type_checking(test: ast.expr) -> bool:
    """``TYPE_CHECKING`` or ``typing.TYPE_CHECKING``."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )
