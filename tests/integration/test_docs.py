"""The README and docs/ run as written: every ```python block runs, every ``mhc-mup`` command parses, every
relative link and every named module, object or file exists.

A block may carry tags in an HTML comment on the line before its fence, ``<!-- docs-test: slow, ... -->``:

- ``slow``: marked ``pytest.mark.slow`` (seconds of compute, not just imports);
- ``needs-run-output``: runs after a small sweep has written ``mhc-mup-out/`` (what ``mhc-mup run`` writes);
- ``needs-fused-kernels``: needs CUDA, or Triton for its CPU interpreter (then run with ``TRITON_INTERPRET=1``).

Each Python block runs in a fresh namespace in its own temporary folder. Commands are parsed by the CLI's own
parser, not run: the commands' behaviour is tested in tests/cli/.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
LINKED = (*DOCS, ROOT / "experiments" / "README.md")  # links and names are checked here too

KNOWN_TAGS = frozenset({"slow", "needs-run-output", "needs-fused-kernels"})
TAG_LINE = re.compile(r"<!--\s*docs-test:\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(\S*)")

# A sweep small enough for seconds, written where `mhc-mup run` writes by default.
RUN_OUTPUT_SETUP = """\
from pathlib import Path as _Path

from mhc_mup import SweepConfig as _SweepConfig, run_sweep as _run_sweep, write_results as _write_results

_write_results(
    _run_sweep(_SweepConfig(widths=(64, 128, 256), sensitivity_samples=8, update_samples=8)), _Path("mhc-mup-out")
)
"""


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it starts (1-based line of its fence), its language, code and tags."""

    path: Path
    line: int
    language: str
    code: str
    tags: frozenset[str]

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def fenced_blocks(path: Path) -> list[Block]:
    """Every top-level fenced block of a markdown file, with the tags of a ``docs-test`` comment just above."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start, language = i, match.group(1)
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"{path.relative_to(ROOT)}:{start + 1}: a fence that is never closed"
        previous = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        tag_match = TAG_LINE.search(previous)
        tags = frozenset(t.strip() for t in tag_match.group(1).split(",")) if tag_match else frozenset()
        blocks.append(Block(path, start + 1, language, "\n".join(lines[start + 1 : end]) + "\n", tags))
        i = end + 1
    return blocks


ALL_BLOCKS = [block for path in DOCS for block in fenced_blocks(path)]
PYTHON_BLOCKS = [block for block in ALL_BLOCKS if block.language == "python"]
BASH_BLOCKS = [block for block in ALL_BLOCKS if block.language in ("bash", "sh", "shell")]


def _python_param(block: Block):
    marks = [pytest.mark.slow] if "slow" in block.tags else []
    return pytest.param(block, id=block.name, marks=marks)


def test_the_your_own_model_example_is_a_block_that_runs():
    """Issue 21's example (a nanoGPT-style model, its width plan, optimizer groups and coordinate check) is one
    python block whose first line is ``# example: your own model``; test_python_block_runs runs it as written."""
    found = [b for b in PYTHON_BLOCKS if b.code.startswith("# example: your own model\n")]
    assert len(found) == 1, [b.name for b in found]


def test_the_docs_have_blocks_and_known_tags():
    assert len(PYTHON_BLOCKS) >= 5 and len(BASH_BLOCKS) >= 5, "the block parser found too few blocks"
    for block in ALL_BLOCKS:
        assert block.tags <= KNOWN_TAGS, f"{block.name}: unknown docs-test tags {sorted(block.tags - KNOWN_TAGS)}"


@pytest.mark.parametrize("block", [_python_param(b) for b in PYTHON_BLOCKS])
def test_python_block_runs(block: Block, tmp_path: Path, monkeypatch):
    """Each block runs in a fresh namespace, in a temporary folder (in this process: one torch import in all)."""
    if "needs-fused-kernels" in block.tags and not torch.cuda.is_available():
        if importlib.util.find_spec("triton") is None:
            pytest.skip("needs CUDA, or Triton for its interpreter (pip install -e '.[interpreter]')")
        # Triton reads TRITON_INTERPRET when a kernel is defined (tests/conftest.py sets it before any is)
        if os.environ.get("TRITON_INTERPRET") != "1":
            if "mhc_mup.kernels.triton_kernels" in sys.modules:
                pytest.skip("the kernels were defined without TRITON_INTERPRET=1, and there is no GPU")
            monkeypatch.setenv("TRITON_INTERPRET", "1")
    if "import transformers" in block.code and importlib.util.find_spec("transformers") is None:
        pytest.skip("needs transformers (pip install -e '.[adapters]')")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    if "needs-run-output" in block.tags:
        exec(compile(RUN_OUTPUT_SETUP, f"{block.name} (setup)", "exec"), {"__name__": "__main__"})
    try:
        exec(compile(block.code, block.name, "exec"), {"__name__": "__main__"})
    finally:
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")


def _parser():
    """The CLI's parser, wherever the cli package builds it; skips when no builder is found."""
    for module, name in (("mhc_mup.cli.app", "build_parser"), ("mhc_mup.cli.parser", "build_parser")):
        if importlib.util.find_spec(module) is not None and hasattr(builder := importlib.import_module(module), name):
            return getattr(builder, name)()
    pytest.skip("no build_parser() in mhc_mup.cli.app or mhc_mup.cli.parser: cannot parse the documented commands")


def commands(block: Block) -> list[list[str]]:
    """The argument lists of every ``mhc-mup`` / ``python -m mhc_mup`` command in a shell block."""
    text = block.code.replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars="&|;")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        segment: list[str] = []
        for token in [*lexer, ";"]:
            if token and set(token) <= set("&|;"):
                if segment[:1] == ["mhc-mup"]:
                    found.append(segment[1:])
                elif segment[1:3] == ["-m", "mhc_mup"] and segment[0].startswith("python"):
                    found.append(segment[3:])
                segment = []
            else:
                segment.append(token)
    return found


@pytest.mark.parametrize("block", [pytest.param(b, id=b.name) for b in BASH_BLOCKS])
def test_commands_parse(block: Block, capsys):
    parser = _parser()
    for argv in commands(block):
        try:
            parser.parse_args(argv)
        except SystemExit as exit_:
            assert exit_.code in (0, None), f"{block.name}: `mhc-mup {shlex.join(argv)}`: {capsys.readouterr().err}"


def test_documented_param_rules_parse(capsys):
    """The ``--param`` rule sets shown as text parse as ``mhc-mup run`` arguments."""
    parser = _parser()
    rules = [
        line.strip()
        for block in ALL_BLOCKS
        if block.language == "text"
        for line in block.code.splitlines()
        if line.strip().startswith("--param ")
    ]
    assert rules, "no --param examples found in the docs"
    for rule in rules:
        try:
            parser.parse_args(["run", *shlex.split(rule)])
        except SystemExit:
            pytest.fail(f"`mhc-mup run {rule}`: {capsys.readouterr().err}")


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file (outside code blocks), with GitHub's -1, -2 … for repeats."""
    slugs: set[str] = set()
    counts: dict[str, int] = {}
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (match := re.match(r"#{1,6} (.*)", line)):
            slug = github_slug(match.group(1))
            n = counts.get(slug, 0)
            counts[slug] = n + 1
            slugs.add(f"{slug}-{n}" if n else slug)
    return slugs


def prose(path: Path) -> str:
    """A markdown file without its fenced blocks."""
    return re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("path", [pytest.param(p, id=str(p.relative_to(ROOT))) for p in LINKED])
def test_relative_links_resolve(path: Path):
    broken = []
    for target in LINK.findall(prose(path)):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            broken.append(f"{target} (no {resolved})")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target} (no heading #{anchor} in {resolved.name})")
    assert not broken, f"{path.relative_to(ROOT)}: broken links: {broken}"


def resolves(dotted: str) -> bool:
    """Whether ``mhc_mup.a.b.c`` names a module or an attribute reachable from the longest importable prefix."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize("path", [pytest.param(p, id=str(p.relative_to(ROOT))) for p in LINKED])
def test_named_modules_objects_and_files_exist(path: Path):
    text = prose(path)
    missing = [name for name in set(re.findall(r"`(mhc_mup(?:\.\w+)+)", text)) if not resolves(name)]
    for name in set(re.findall(r"`((?:mhc_mup|tests|benchmarks)/[\w/.-]+)`", text)):
        if not any((base / name).exists() for base in (ROOT, ROOT / "src")):
            missing.append(name)
    assert not missing, f"{path.relative_to(ROOT)} names what does not exist: {sorted(missing)}"


def test_python_api_table_names_what_mhc_mup_and_its_subpackages_export():
    import mhc_mup

    text = (ROOT / "docs" / "python-api.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(mhc_mup\.\w+)`[^|]*\|([^|]*)\|([^|]*)\|", text, flags=re.M)
    assert len(rows) >= 6, "the subpackage table of docs/python-api.md was not found"
    wrong = []
    for subpackage, top, more in rows:
        wrong += [f"mhc_mup.{name}" for name in re.findall(r"`(\w+)`", top) if name not in mhc_mup.__all__]
        homes = [subpackage, *re.findall(r"`(mhc_mup(?:\.\w+)+)`", more)]
        wrong += [
            f"{subpackage}: {name}"
            for name in re.findall(r"`(\w+)`", more)
            if not any(resolves(f"{home}.{name}") for home in homes)
        ]
    assert not wrong, f"docs/python-api.md lists names that are not exported: {wrong}"
