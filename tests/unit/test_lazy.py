"""Lazy re-exports: each package's ``if TYPE_CHECKING:`` block is its list of public names, and every one loads."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from mhc_mup._lazy import lazy_exports, type_checking_exports

PACKAGES = sorted(
    ".".join(p.relative_to(Path(__file__).parents[2] / "src").parent.parts)
    for p in (Path(__file__).parents[2] / "src" / "mhc_mup").rglob("__init__.py")
)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_loads_from_the_module_its_block_names(package):
    module = importlib.import_module(package)
    home = type_checking_exports(module.__file__)
    assert set(home) <= set(module.__all__)
    for name in module.__all__:
        value = getattr(module, name)
        if name in home:
            assert value is getattr(importlib.import_module(home[name]), name), name
    assert set(module.__all__) <= set(dir(module))


def test_importing_the_package_imports_no_module_it_exports():
    code = "import sys, mhc_mup; print(sorted(m for m in sys.modules if m.startswith('mhc_mup.')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['mhc_mup._lazy']"


def _init(tmp_path: Path, block: str) -> Path:
    path = tmp_path / "__init__.py"
    path.write_text(f"from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n{block}", encoding="utf-8")
    return path


def test_the_block_maps_each_name_to_its_module(tmp_path):
    path = _init(tmp_path, "    from math import pi, tau\n    from os.path import join\n")
    assert type_checking_exports(path) == {"pi": "math", "tau": "math", "join": "os.path"}
    exported, getattr_, dir_ = lazy_exports("math", str(path), submodules=())
    assert exported == ["join", "pi", "tau"] and {"join", "tau"} <= set(dir_())
    assert getattr_("tau") == 6.283185307179586
    with pytest.raises(AttributeError, match="'math' has no attribute 'e'"):
        getattr_("e")


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("    from math import pi as PI\n", "'pi as PI' is not exported as it reads"),
        ("    from .math import pi\n", "takes 'from package.module import name' only"),
        ("    import math\n", "takes 'from package.module import name' only"),
        ("    from math import *\n", "takes 'from package.module import name' only"),
        ("    from math import pi\n    from cmath import pi\n", "pi is imported from two modules"),
    ],
)
def test_a_block_that_would_not_read_as_it_exports_is_refused(tmp_path, block, message):
    with pytest.raises(ImportError, match=message):
        type_checking_exports(_init(tmp_path, block))


def test_a_package_without_a_block_or_with_a_name_that_is_a_submodule_is_refused(tmp_path):
    bare = tmp_path / "bare.py"
    bare.write_text("x = 1\n", encoding="utf-8")
    with pytest.raises(ImportError, match="expected one module-level 'if TYPE_CHECKING:' block, found 0"):
        type_checking_exports(bare)
    with pytest.raises(ImportError, match=r"\['pi'\] are both exported names and submodules"):
        lazy_exports("pkg", str(_init(tmp_path, "    from math import pi\n")), submodules=("pi",))
