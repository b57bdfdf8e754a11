"""The ``mhc-mup`` command: a thin layer that parses, calls the library, prints and writes. Nothing imports it.

``app`` holds ``main`` and the subcommand table, ``common`` the shared argument types, flags and helpers, and
``diagnose`` (run, compare, report), ``interop`` (inspect, adapter), ``coordcheck`` and ``transfer`` one
family of subcommands each.
"""

from typing import TYPE_CHECKING

from mhc_mup._lazy import lazy_exports

if TYPE_CHECKING:  # the public names, read by type checkers and editors and by lazy_exports
    from mhc_mup.cli.app import main

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    __file__,
    submodules=("app", "common", "coordcheck", "diagnose", "interop", "transfer"),
)
