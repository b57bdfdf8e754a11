"""The ``mhc-mup`` command: a thin layer that parses, calls the library, prints and writes. Nothing imports it."""

from mhc_mup.cli.app import main

__all__ = ["main"]
