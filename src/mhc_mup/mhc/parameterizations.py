"""Parameterizations of the mHC generator: how ``fn``, ``scale`` and ``base`` are initialised and
how fast each learns, as functions of the stream count ``n_s`` and the stream width ``d``.

A :class:`Parameterization` is a set of named rules, each a safe :class:`~mhc_mup.mhc.expressions.Expr`:

* ``sigma_pre``, ``sigma_post``, ``sigma_comb``: std of the rows of ``fn`` that feed each gate
  (``fn ~ N(0, σ²)`` entrywise);
* ``scale_pre``, ``scale_post``, ``scale_comb``: the initial ``scale`` values;
* ``base_pre``, ``base_post``, ``base_comb``: the initial (constant) ``base`` of each gate block;
* ``lr_{fn,scale,base}_{sgd,adam}``: the learning-rate multiplier of each parameter group, per
  optimizer: a group's learning rate is ``η · multiplier(n_s, d)``.

Aliases set several rules at once: ``sigma_w`` (all three σ), ``scale``, ``base``, ``lr_fn``,
``lr_scale``, ``lr_base`` (both optimizers) and ``lr`` (every group, both optimizers).
The presets are the report's table (``baseline``, ``A``–``E``), its µP rule (``mup``), and the
inits of Hugging Face's DeepSeek-V4 code (``hf-v4``) and of the mHC paper (``mhc-paper``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mhc_mup.errors import ParameterizationError
from mhc_mup.mhc.expressions import Expr, ExpressionError

if TYPE_CHECKING:
    import torch
    from torch.types import Device

GATES = ("pre", "post", "comb")
GROUPS = ("fn", "scale", "base")
OPTIMIZERS = ("sgd", "adam")
INIT_KEYS = tuple(f"{kind}_{gate}" for kind in ("sigma", "scale", "base") for gate in GATES)
LR_KEYS = tuple(f"lr_{group}_{opt}" for opt in OPTIMIZERS for group in GROUPS)
RULE_KEYS = INIT_KEYS + LR_KEYS
ALIASES: dict[str, tuple[str, ...]] = {
    "sigma_w": tuple(f"sigma_{g}" for g in GATES),
    "scale": tuple(f"scale_{g}" for g in GATES),
    "base": tuple(f"base_{g}" for g in GATES),
    **{f"lr_{group}": tuple(f"lr_{group}_{opt}" for opt in OPTIMIZERS) for group in GROUPS},
    **{f"lr_{opt}": tuple(f"lr_{group}_{opt}" for group in GROUPS) for opt in OPTIMIZERS},
    "lr": LR_KEYS,
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,39}$")



def _gate_rows(n_s: int) -> dict[str, slice]:
    """Rows of ``fn`` (and entries of ``base``) that feed each gate: pre ``[0, n)``, post ``[n, 2n)``,
    comb ``[2n, 2n + n²)``."""
    return {"pre": slice(0, n_s), "post": slice(n_s, 2 * n_s), "comb": slice(2 * n_s, 2 * n_s + n_s * n_s)}


@dataclass(frozen=True)
class GeneratorInit:
    """A parameterization's init evaluated at one ``(n_s, d)``: numbers, one per gate (pre, post, comb)."""

    sigma_w: tuple[float, float, float] = (0.02, 0.02, 0.02)
    scale: tuple[float, float, float] = (0.1, 0.1, 0.1)
    base: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        for name in ("sigma_w", "scale", "base"):
            value = getattr(self, name)
            if isinstance(value, (int, float)):
                object.__setattr__(self, name, (float(value),) * 3)
            elif len(value) != 3:
                raise ValueError(f"{name} must be one value or three (pre, post, comb), got {value!r}")
            else:
                object.__setattr__(self, name, tuple(float(v) for v in value))
        if not all(math.isfinite(s) and s > 0 for s in self.sigma_w):
            raise ValueError(f"sigma_w must be positive finite numbers, got {self.sigma_w!r}")
        if not all(math.isfinite(s) and s != 0 for s in self.scale):
            raise ValueError(f"scale must be finite non-zero numbers, got {self.scale!r}")
        if not all(math.isfinite(b) for b in self.base):
            raise ValueError(f"base must be finite numbers, got {self.base!r}")

    # torch is imported where a tensor is built: a parameterization's rules and numbers (what the CLI validates
    # and a report reads) need no torch.
    def _per_row(
        self, values: tuple[float, float, float], n_s: int, gate: str | None, dtype: torch.dtype, device: Device
    ) -> torch.Tensor:
        import torch

        rows = _gate_rows(n_s)
        gates = GATES if gate is None else (gate,)
        parts = [torch.full((rows[g].stop - rows[g].start,), values[GATES.index(g)]) for g in gates]
        return torch.cat(parts).to(dtype=dtype, device=device)

    def scale_tensor(self, dtype: torch.dtype, device: Device = None) -> torch.Tensor:
        """``(3,)``: ``(s_pre, s_post, s_comb)``."""
        import torch

        return torch.tensor(self.scale, dtype=dtype, device=device)

    def base_tensor(
        self, n_s: int, dtype: torch.dtype, device: Device = None, *, gate: str | None = None
    ) -> torch.Tensor:
        """``((2+n_s)·n_s,)`` in V4 layout, or only ``gate``'s block (``n_s`` or ``n_s²`` entries)."""
        return self._per_row(self.base, n_s, gate, dtype, device)

    def sample_fn(
        self,
        n_s: int,
        fan_in: int,
        batch: tuple[int, ...] = (),
        *,
        generator: torch.Generator | None,
        gate: str | None = None,
        dtype: torch.dtype | None = None,
        device: Device = None,
    ) -> torch.Tensor:
        """A ``(*batch, rows, fan_in)`` generator weight (``dtype`` default float32), each gate's rows
        ``~ N(0, σ_gate²)``: all ``(2+n_s)·n_s`` rows in V4 layout, or only ``gate``'s. ``generator`` must be given;
        None draws from torch's default generator (as a module's ``reset_parameters`` without one does)."""
        import torch

        dtype = torch.float32 if dtype is None else dtype
        std = self._per_row(self.sigma_w, n_s, gate, dtype, device)
        w = torch.randn(*batch, std.shape[0], fan_in, generator=generator, dtype=dtype, device=device)
        return w.mul_(std.unsqueeze(-1))


SEED_INIT = GeneratorInit()


@dataclass(frozen=True)
class Parameterization:
    """Init and learning-rate rules of the mHC generator as functions of ``(n_s, d)``.

    ``rules`` maps every key of :data:`RULE_KEYS` to an :class:`Expr`. Build one with
    :func:`parameterization` (defaults: the baseline) or :meth:`with_rules`.
    """

    name: str
    description: str
    rules: Mapping[str, Expr] = field(hash=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ParameterizationError(
                f"parameterization name {self.name!r} must be 1–40 letters, digits or _.+- (it names a folder)"
            )
        missing = [k for k in RULE_KEYS if k not in self.rules]
        unknown = [k for k in self.rules if k not in RULE_KEYS]
        if missing or unknown:
            raise ParameterizationError(
                f"parameterization {self.name!r}: " + (f"missing rules {missing}" if missing else f"unknown {unknown}")
            )

    def with_rules(
        self, name: str | None = None, description: str | None = None, **rules: str | float
    ) -> Parameterization:
        """A copy with some rules replaced; aliases (``sigma_w``, ``scale``, ``lr_fn`` …) expand."""
        new = dict(self.rules)
        label = name or self.name
        for key, text in rules.items():  # parse under the key the caller wrote, then expand aliases
            try:
                expr = Expr(text)
            except ExpressionError as exc:
                raise ParameterizationError(f"parameterization {label!r}: {key}: {exc}") from None
            new.update(dict.fromkeys(_expand({key: text}, label), expr))
        return Parameterization(name or self.name, self.description if description is None else description, new)

    def value(self, key: str, n_s: int, d: int) -> float:
        """Rule ``key`` evaluated at ``(n_s, d)``, checked: σ > 0, scale ≠ 0, LR multiplier ≥ 0, all finite."""
        expr = self.rules[key]
        try:
            v = expr(n_s, d)
        except ExpressionError as exc:
            raise ParameterizationError(f"parameterization {self.name!r}: {key}: {exc}") from None
        if key.startswith("sigma"):
            ok, want = v > 0, "a positive std"
        elif key.startswith("scale"):
            ok, want = v != 0, "a non-zero scale"
        elif key.startswith("lr"):
            ok, want = v >= 0, "a learning-rate multiplier >= 0"
        else:
            ok, want = True, "a finite base"
        if not (math.isfinite(v) and ok):
            raise ParameterizationError(
                f"parameterization {self.name!r}: {key} = {expr.text!r} gives {v!r} at d={d} (n_s={n_s}); need {want}"
            )
        return v

    def init(self, n_s: int, d: int) -> GeneratorInit:
        """The init at one width, as numbers."""
        return GeneratorInit(
            sigma_w=tuple(self.value(f"sigma_{g}", n_s, d) for g in GATES),  # type: ignore[arg-type]
            scale=tuple(self.value(f"scale_{g}", n_s, d) for g in GATES),  # type: ignore[arg-type]
            base=tuple(self.value(f"base_{g}", n_s, d) for g in GATES),  # type: ignore[arg-type]
        )

    def lr_multipliers(self, optimizer: str, n_s: int, d: int) -> dict[str, float]:
        """``{"fn": m_fn, "scale": m_scale, "base": m_base}`` for ``optimizer`` (``sgd`` or ``adam``):
        the group's learning rate is ``η · m``."""
        if optimizer not in OPTIMIZERS:
            raise ParameterizationError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
        return {group: self.value(f"lr_{group}_{optimizer}", n_s, d) for group in GROUPS}

    def check(self, n_s: int, widths: tuple[int, ...] | list[int]) -> None:
        """Evaluate every rule at every width; :class:`ParameterizationError` names the first failure."""
        for d in widths:
            for key in RULE_KEYS:
                self.value(key, n_s, d)

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "rules": {k: self.rules[k].text for k in RULE_KEYS}}

    @classmethod
    def from_dict(cls, data: Mapping) -> Parameterization:
        """Inverse of :meth:`to_dict`; rules left out take the baseline's."""
        base = PARAMETERIZATIONS["baseline"]
        return base.with_rules(str(data["name"]), str(data.get("description", "")), **dict(data.get("rules", {})))

    def rule_table(self) -> list[dict[str, str]]:
        """One row per parameter group: its init and its SGD and Adam learning rates, as formulas."""
        r = {k: e.text for k, e in self.rules.items()}

        def per_gate(kind: str) -> str:
            values = [r[f"{kind}_{g}"] for g in GATES]
            return (
                values[0]
                if len(set(values)) == 1
                else ", ".join(f"{g}: {v}" for g, v in zip(GATES, values, strict=True))
            )

        def lr(group: str, opt: str) -> str:
            m = r[f"lr_{group}_{opt}"]
            return "η" if m in ("1", "1.0") else f"η·({m})"

        return [
            {"parameter": "fn", "init": f"N(0, σ²), σ = {per_gate('sigma')}", "lr_sgd": lr("fn", "sgd"),
             "lr_adam": lr("fn", "adam")},
            {"parameter": "scale", "init": per_gate("scale"), "lr_sgd": lr("scale", "sgd"),
             "lr_adam": lr("scale", "adam")},
            {"parameter": "base", "init": per_gate("base"), "lr_sgd": lr("base", "sgd"),
             "lr_adam": lr("base", "adam")},
        ]  # fmt: skip


def _expand(rules: Mapping[str, str | float], name: str) -> dict[str, str | float]:
    out: dict[str, str | float] = {}
    for key, text in rules.items():
        if key in ALIASES:
            out.update(dict.fromkeys(ALIASES[key], text))
        elif key in RULE_KEYS:
            out[key] = text
        else:
            known = ", ".join((*ALIASES, *RULE_KEYS))
            raise ParameterizationError(f"parameterization {name!r}: unknown rule {key!r} (rules: {known})")
    return out


def parameterization(name: str, description: str = "", **rules: str | float) -> Parameterization:
    """A parameterization from the baseline's rules (σ_W 0.02, scale 0.1, base 0, every LR η) and ``rules``."""
    defaults = {**dict.fromkeys(ALIASES["sigma_w"], "0.02"), **dict.fromkeys(ALIASES["scale"], "0.1")}
    defaults |= {**dict.fromkeys(ALIASES["base"], "0"), **dict.fromkeys(LR_KEYS, "1")}
    start = Parameterization(name, description, {k: Expr(v) for k, v in defaults.items()})
    return start.with_rules(None, None, **rules) if rules else start  # the name and description as given


PARAMETERIZATIONS: dict[str, Parameterization] = {
    p.name: p
    for p in (
        parameterization("baseline", "σ_W = 0.02, s = 0.1: the seed's"),
        parameterization("A", "s_C = 1/(n_s·d)", scale_comb="1/(n_s*d)"),
        parameterization("B", "σ_W = s_C = 1/√(n_s·d)", sigma_w="1/sqrt(n_s*d)", scale_comb="1/sqrt(n_s*d)"),
        parameterization("C", "σ_W = 1/(n_s·d), s = 0.1", sigma_w="1/(n_s*d)"),
        parameterization("D", "s_C = 1/√d, σ_W = 0.02", scale_comb="1/sqrt(d)"),
        parameterization("E", "σ_W = 1/√(n_s·d), s = 0.1", sigma_w="1/sqrt(n_s*d)"),
        parameterization("mup", "µP: C's init, LR η/d for fn, η for scale and base", sigma_w="1/(n_s*d)", lr_fn="1/d"),
        parameterization("hf-v4", "Hugging Face DeepSeek-V4 init: σ_W = 0.02, s = 1, base 0", scale="1"),
        parameterization(
            "mhc-paper", "mHC paper: gating factors α = 0.01 (σ_W = 0.02 assumed; the paper gives α)", scale="0.01"
        ),
    )
}
"""The named parameterizations. ``A``–``E`` change only what the report's table says; the rest keep
the baseline's σ_W = 0.02, s = 0.1, base 0 and a fixed LR η for every group."""

COMPARE_DEFAULT = ("baseline", "A", "B", "C", "D", "E", "mup")


def get_parameterization(name: str) -> Parameterization:
    """The preset ``name``; :class:`ParameterizationError` lists the choices for an unknown one."""
    try:
        return PARAMETERIZATIONS[name]
    except KeyError:
        raise ParameterizationError(
            f"unknown parameterization {name!r}; presets: {', '.join(PARAMETERIZATIONS)}"
        ) from None


def split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses: ``a=max(1,d), b=2`` → ``['a=max(1,d)', 'b=2']``."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch in ",;" and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_spec(spec: str) -> Parameterization:
    """A parameterization from the command line.

    ``"C"`` is a preset; ``"NAME: rule=expr, rule=expr"`` starts from the baseline, or from a preset
    named by ``from=PRESET``, e.g. ``"slow: from=mup, lr_fn=1/(n_s*d)"`` or
    ``"mine: sigma_w=1/(n_s*d), scale_comb=0.1"``.
    """
    text = spec.strip()
    if ":" not in text and "=" not in text:
        return get_parameterization(text)
    if ":" not in text:
        raise ParameterizationError(f"parameterization {spec!r}: write NAME: rule=expr, … (e.g. 'mine: sigma_w=1/d')")
    name, _, body = text.partition(":")
    name = name.strip()
    rules: dict[str, str] = {}
    start = PARAMETERIZATIONS["baseline"]
    for part in split_top_level(body):
        key, eq, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key or not value:
            raise ParameterizationError(f"parameterization {name!r}: {part!r} is not rule=expr")
        if key == "from":
            start = get_parameterization(value)
        else:
            rules[key] = value
    if not rules and start.name == "baseline":
        raise ParameterizationError(f"parameterization {name!r} sets no rule")
    description = f"{'from ' + start.name + ': ' if start.name != 'baseline' else ''}" + ", ".join(
        f"{k}={v}" for k, v in rules.items()
    )
    return start.with_rules(name, description, **rules)
