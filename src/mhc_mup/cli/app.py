"""``mhc-mup`` command line: the subcommand table, ``main`` and the one place errors become a line.

Each subcommand lives in its own module and fills in its parser in a ``register_*`` function; this module
names them in :data:`COMMANDS` and builds a subcommand's parser only when it is the one chosen, so
``mhc-mup --help`` imports neither torch nor any subcommand. Bad input never produces a traceback: every
error raised on purpose is a :class:`~mhc_mup.errors.MhcMupError`, printed here as one line on stderr
naming the bad value, exit code 2, nothing written.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, cast

from mhc_mup import __version__
from mhc_mup.errors import MhcMupError, UsageError

__all__ = ["COMMANDS", "EXIT_USAGE", "Command", "build_parser", "main"]

EXIT_USAGE = 2


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, its one-line help, and ``module:function``, which fills in its parser
    (description, arguments, ``handler``) when the command is chosen."""

    name: str
    register: str
    help: str

    def build(self, parser: argparse.ArgumentParser) -> None:
        module, function = self.register.split(":")
        getattr(importlib.import_module(module), function)(parser)


COMMANDS = (
    Command("run", "mhc_mup.cli.diagnose:register_run",
            "sweep widths, measure the six diagnostics, fit how each scales, check Theorem D"),
    Command("compare", "mhc_mup.cli.diagnose:register_compare",
            "one sweep per parameterization; the corrections table and Theorem D for each"),
    Command("report", "mhc_mup.cli.diagnose:register_report",
            "rebuild report.md, report.html and figures/ from a run or compare folder"),
    Command("inspect", "mhc_mup.cli.interop:register_inspect",
            "report a safetensors checkpoint's mHC parameters per layer and across depth"),
    Command("adapter", "mhc_mup.cli.interop:register_adapter",
            "diagnose a real mHC implementation (transformers, hyper-connections) across widths"),
    Command("coordcheck", "mhc_mup.cli.coordcheck:register",
            "train the mHC LM a few steps per width; check every module's output size stays O(1)"),
    Command("transfer", "mhc_mup.cli.transfer:register",
            "LR sweep per width and configuration: does the optimal learning rate transfer across width?"),
)  # fmt: skip


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (a :class:`UsageError`, not argparse's usage block) and
    which reads ``-64`` or ``-64,128`` as a value, so that the flag's type names it as the bad value."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\.?\d")  # argparse's own: r'^-\d+$|^-\d*\.\d+$'

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


class Subcommands(argparse._SubParsersAction):
    """Subparsers that stay empty (a name and a one-line help) until one is chosen; then its module is
    imported and fills it in."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.unbuilt: dict[str, Command] = {}

    def add_command(self, command: Command) -> None:
        self.add_parser(command.name, help=command.help)
        self.unbuilt[command.name] = command

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        command = self.unbuilt.pop(values[0], None) if values else None  # values: the subcommand, then its args
        if command is not None:
            command.build(self.choices[command.name])
        super().__call__(parser, namespace, values, option_string)


def build_parser() -> Parser:
    """The ``mhc-mup`` parser; each subcommand's arguments are added when ``parse_args`` meets its name."""
    parser = Parser(
        prog="mhc-mup",
        description="Does a dynamic mHC (DeepSeek V4 hyper-connection) parameterization transfer across width?",
    )
    parser.add_argument("--version", action="version", version=f"mhc-mup {__version__}")
    sub = cast(Subcommands, parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser,
                                                  action=Subcommands))  # fmt: skip
    for command in COMMANDS:
        sub.add_command(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        return args.handler(args)
    except MhcMupError as exc:
        print(f"mhc-mup: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mhc-mup: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
