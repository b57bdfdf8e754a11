"""What an installed mhc-mup carries beyond its modules."""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_the_package_is_marked_typed_and_ships_the_marker():
    """PEP 561: without ``py.typed`` in the installed package, a user's mypy skips it ("module is installed, but
    missing library stubs or py.typed marker") and every name from it is ``Any``."""
    assert importlib.resources.files("mhc_mup").joinpath("py.typed").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    data = re.search(r"^\[tool\.setuptools\.package-data\]\n(?:#.*\n)*mhc_mup = \[(.*)\]$", pyproject, flags=re.M)
    assert data and '"py.typed"' in data.group(1), "pyproject.toml's package-data does not ship py.typed"
