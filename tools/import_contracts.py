"""An import-linter contract type the built-in ones lack: no module imports another module's private name.

``from mhc_mup.cli.app import _int_list`` couples two modules through a name the first one never promised;
the contract is broken by every ``from X import _name`` (or ``import X._mod`` used as ``X._mod._name``
is not checked) inside the root package where ``X`` is another module of the package. Private *modules*
(``mhc_mup._io``) are fine to import: their public names are the package's internal API. Dunder names
(``__version__``) are public.

Declared in pyproject.toml as ``contract_types = ["private_names: tools.import_contracts.PrivateNamesContract"]``;
``lint-imports`` puts the working directory on ``sys.path``, so run it from the repository root.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass

from grimp import ImportGraph
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


@dataclass(frozen=True)
class PrivateImport:
    importer: str
    imported: str
    name: str
    line: int


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module name of ``from <node.module> import ...`` written inside ``importer``."""
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def private_imports(module: str) -> list[PrivateImport]:
    """Every ``from X import _name`` in ``module`` where ``X`` is another module."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return []
    with open(spec.origin, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), spec.origin)
    is_package = spec.origin.endswith("__init__.py")
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _resolve(module, is_package, node)
            for alias in node.names:
                if _private(alias.name) and source != module:
                    found.append(PrivateImport(module, source, alias.name, node.lineno))
    return found


class PrivateNamesContract(Contract):
    """No module of ``root`` imports a private (``_name``) object from another module of the package.

    Configuration: ``root``, the package to check.
    """

    root = fields.StringField()

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        root = str(self.root)  # type: ignore[arg-type]
        found = [
            hit
            for module in sorted(graph.find_descendants(root) | {root})
            for hit in private_imports(module)
            if hit.imported == root or hit.imported.startswith(root + ".")
        ]
        return ContractCheck(kept=not found, warnings=[], metadata={"found": found})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for hit in check.metadata["found"]:
            output.print_error(f"{hit.importer} (l.{hit.line}) imports the private name {hit.name} from {hit.imported}")
            output.new_line()
