"""Safe width expressions such as ``1/(n_s*d)`` or ``0.1*sqrt(64/d)``.

A parameterization's init and learning-rate rules are small formulas in the stream count ``n_s``
and the stream width ``d``. They are parsed with :mod:`ast` and evaluated by walking the tree:
numbers, ``n_s``, ``d``, ``pi``, ``e``, the operators ``+ - * / **`` and calls to a fixed set of
math functions. Anything else (attribute access, subscripts, imports, lambdas, other names or
calls) is rejected at parse time, so no user text is ever handed to ``eval``.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field

from mhc_mup.errors import ExpressionError

VARIABLES = ("n_s", "d")
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}
FUNCTIONS: dict[str, Callable[..., float]] = {
    "sqrt": math.sqrt,
    "log": math.log,
    "log2": math.log2,
    "log10": math.log10,
    "exp": math.exp,
    "abs": abs,
    "min": min,
    "max": max,
}
_BINARY: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[float], float]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
MAX_LENGTH = 200



def _check(node: ast.AST, text: str) -> None:
    """Raise :class:`ExpressionError` unless every node of the tree is allowed."""
    if isinstance(node, ast.Expression):
        _check(node.body, text)
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ExpressionError(f"expression {text!r}: only numbers are allowed as constants, got {node.value!r}")
    elif isinstance(node, ast.Name):
        if node.id not in VARIABLES and node.id not in CONSTANTS:
            allowed = ", ".join((*VARIABLES, *CONSTANTS))
            raise ExpressionError(f"expression {text!r}: unknown name {node.id!r} (allowed: {allowed})")
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            raise ExpressionError(f"expression {text!r}: operator {type(node.op).__name__} is not allowed (+ - * / **)")
        _check(node.left, text)
        _check(node.right, text)
    elif isinstance(node, ast.UnaryOp):
        if type(node.op) not in _UNARY:
            raise ExpressionError(f"expression {text!r}: operator {type(node.op).__name__} is not allowed")
        _check(node.operand, text)
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise ExpressionError(
                f"expression {text!r}: call to {name!r} is not allowed (functions: {', '.join(FUNCTIONS)})"
            )
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args) or not node.args:
            raise ExpressionError(f"expression {text!r}: {node.func.id}() takes plain positional arguments")
        for arg in node.args:
            _check(arg, text)
    else:
        raise ExpressionError(f"expression {text!r}: {type(node).__name__} is not allowed")


def _evaluate(node: ast.AST, env: dict[str, float]) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, env)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.Name):
        return env[node.id] if node.id in env else CONSTANTS[node.id]
    if isinstance(node, ast.BinOp):
        value = _BINARY[type(node.op)](_evaluate(node.left, env), _evaluate(node.right, env))
        if isinstance(value, complex):  # (-8) ** 0.5 is complex in Python, not an error
            raise ValueError("a negative number raised to a fractional power")
        return value
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_evaluate(node.operand, env))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return float(FUNCTIONS[node.func.id](*(_evaluate(a, env) for a in node.args)))
    raise AssertionError(f"unchecked node {type(node).__name__}")


@dataclass(frozen=True)
class Expr:
    """A parsed width expression; ``Expr("1/(n_s*d)")(n_s=4, d=64) == 1/256``.

    Equality and hashing use the text. ``Expr(0.02)`` accepts a plain number.
    """

    text: str
    _tree: ast.Expression = field(init=False, repr=False, compare=False)

    def __init__(self, text: str | float) -> None:
        if isinstance(text, bool):
            raise ExpressionError(f"expression {text!r} is not a number or a formula")
        source = repr(float(text)) if isinstance(text, (int, float)) else str(text).strip()
        if not source:
            raise ExpressionError("empty expression")
        if len(source) > MAX_LENGTH:
            raise ExpressionError(f"expression {source[:40]!r}… is longer than {MAX_LENGTH} characters")
        try:
            tree = ast.parse(source, mode="eval")
        except SyntaxError:
            raise ExpressionError(f"expression {source!r} is not a valid formula") from None
        _check(tree, source)
        object.__setattr__(self, "text", source)
        object.__setattr__(self, "_tree", tree)

    def __call__(self, n_s: float, d: float) -> float:
        """The value at ``(n_s, d)``; :class:`ExpressionError` on a math error (e.g. division by 0)."""
        try:
            return _evaluate(self._tree, {"n_s": float(n_s), "d": float(d)})
        except (ArithmeticError, ValueError, TypeError) as exc:  # ZeroDivision, Overflow, log(-1), complex
            raise ExpressionError(f"expression {self.text!r} fails at n_s={n_s}, d={d}: {exc}") from None

    def __str__(self) -> str:
        return self.text

    @property
    def constant(self) -> bool:
        """True when the expression does not mention ``n_s`` or ``d``."""
        return not any(isinstance(n, ast.Name) and n.id in VARIABLES for n in ast.walk(self._tree))
