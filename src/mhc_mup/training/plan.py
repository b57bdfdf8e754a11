"""A width plan for any model: which parameters are µP's input, hidden, readout and vector-like weights, and
which are mHC generators, decided from the model and a base model of the same architecture at another width.

As microsoft/mup's base shapes: a dimension *grows* where the base model's (or a ``delta`` model's) shape
differs, and ``m`` is the parameter's own width multiplier (model / base along the growing dimension). With
the fan-in the last dimension (the first for ``nn.Embedding``) and the fan-out the one before it:

===============================  ============  ======================================================
what grows                       kind          m
===============================  ============  ======================================================
fan-out only                     embedding     fan-out ratio (µP's input weights: embeddings, …)
fan-in and fan-out               hidden        fan-in ratio
fan-in only                      readout       fan-in ratio (µP's output weights: the LM head, …)
a vector (norm weight / bias)    gain / bias   its ratio
nothing                          fixed         1 (its init is left alone; SP and µP agree)
===============================  ============  ======================================================

The mHC generators are recognised by module, not by shape: ours (:class:`~mhc_mup.nn.HyperConnection`,
:class:`~mhc_mup.nn.HeadCollapse`), transformers' ``DeepseekV4HyperConnection`` / ``DeepseekV4HyperHead``
and ``hyper-connections``' ``ManifoldConstrainedHyperConnections`` (by class name: neither package is
imported). Their ``fn``, ``scale`` and ``base`` follow a generator preset evaluated at the module's own
``(n_s, d)``. A :class:`WidthRule` (the body's SP or µP and the generator's preset) then gives every
parameter its init (:meth:`WidthPlan.initialise`) and its learning-rate multiplier for Adam/AdamW or SGD
(:meth:`WidthPlan.param_groups`), by the closed forms of :mod:`mhc_mup.training.width_rules`.

The plan is plain data keyed by parameter name — nothing is attached to a tensor — so it is the same for a
``torch.compile``-d, deep-copied, pickled, reloaded or ``fully_shard``-ed model, and it is JSON-able
(:meth:`WidthPlan.to_dict`). µP's ``1/d_head`` attention scale lives in the model's forward, not in any
parameter: set it in your attention (:class:`~mhc_mup.training.model.MHCLM` does).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from mhc_mup.errors import WidthParamError
from mhc_mup.mhc.parameterizations import GATES, PARAMETERIZATIONS, GeneratorInit, Parameterization, parse_spec
from mhc_mup.training.width_rules import MODEL_PARAMS, body_init_std, body_lr_multiplier

__all__ = [
    "BODY_KINDS",
    "GENERATOR_MODULES",
    "OPTIMIZERS",
    "PLAN_KINDS",
    "ParamPlan",
    "WidthPlan",
    "WidthRule",
    "canonical_name",
    "width_plan",
]

PLAN_KINDS = ("embedding", "hidden", "readout", "gain", "bias", "fixed", "hc_fn", "hc_scale", "hc_base")
"""Parameter kinds, in the order the optimizer groups are built (MHCLM's :data:`~.width_rules.KINDS` first)."""
OPTIMIZERS = ("adam", "adamw", "sgd")
WRAPPER_SEGMENTS = ("_orig_mod.", "_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")
"""Name segments that wrappers insert (``torch.compile``, FSDP1, activation checkpointing)."""
GENERATOR_GATES = ("v4", "alpha", *GATES)
"""How a generator tensor's entries map to gates: V4's ``(2+n_s)·n_s`` layout along its rows (``v4``), the
hyper-connections package's ``[pre, comb × n_s]`` along its last dimension (``alpha``), or one gate."""


def canonical_name(name: str) -> str:
    """``name`` without the segments wrappers insert: ``_orig_mod.blocks.0.w`` → ``blocks.0.w``."""
    for segment in WRAPPER_SEGMENTS:
        name = name.replace(segment, "")
    return name


@dataclass(frozen=True)
class WidthRule:
    """The rule a plan applies: ``model`` (``"sp"`` or ``"mup"``) for the body, ``hc`` the generator's preset."""

    model: str = "mup"
    hc: Parameterization = field(default_factory=lambda: PARAMETERIZATIONS["mup"])

    def __post_init__(self) -> None:
        if self.model not in MODEL_PARAMS:
            raise WidthParamError(f"model parameterization must be sp or mup, got {self.model!r}")
        if isinstance(self.hc, str):  # a preset's name or a rule set, as --param takes them
            object.__setattr__(self, "hc", parse_spec(self.hc))
        if not isinstance(self.hc, Parameterization):
            raise WidthParamError(f"hc must be a Parameterization or a preset's name, got {self.hc!r}")

    @property
    def name(self) -> str:
        """``mup+baseline``: the body's rule and the generator's preset."""
        return f"{self.model}+{self.hc.name}"

    def to_dict(self) -> dict:
        return {"model": self.model, "hc": self.hc.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping) -> WidthRule:
        try:
            return cls(str(data["model"]), Parameterization.from_dict(data["hc"]))
        except (KeyError, TypeError) as exc:
            raise WidthParamError(f"not a width rule's dict: {type(exc).__name__} {exc}") from None


@dataclass(frozen=True)
class ParamPlan:
    """One parameter's place in the plan.

    ``kind`` one of :data:`PLAN_KINDS`; ``shape`` / ``base_shape`` in the model and the base model;
    ``fan_in`` the model's; ``m`` the width multiplier. Generator tensors also carry ``gates`` (one of
    :data:`GENERATOR_GATES`) and the module's ``n_s`` and stream width ``d``; ``keep_init`` leaves the
    tensor as the model initialised it (a ``fixed`` one, or a gain with a zero-centred parameterization).
    """

    kind: str
    shape: tuple[int, ...]
    base_shape: tuple[int, ...]
    fan_in: int = 1
    m: float = 1.0
    gates: str = ""
    n_s: int = 0
    d: int = 0
    keep_init: bool = False

    def __post_init__(self) -> None:
        if self.kind not in PLAN_KINDS:
            raise WidthParamError(f"parameter kind must be one of {', '.join(PLAN_KINDS)}, got {self.kind!r}")
        if self.gates not in ("", *GENERATOR_GATES):
            raise WidthParamError(f"generator gates must be one of {', '.join(GENERATOR_GATES)}, got {self.gates!r}")

    def lr_multiplier(self, rule: WidthRule, optimizer: str) -> float:
        """The learning rate of this parameter is ``η ·`` this, for ``optimizer`` (adam, adamw or sgd)."""
        _check_optimizer(optimizer)
        opt = "adam" if optimizer == "adamw" else optimizer
        if self.kind.startswith("hc_"):
            return rule.hc.lr_multipliers(opt, self.n_s, self.d)[self.kind.removeprefix("hc_")]
        if self.kind == "fixed":
            return 1.0
        return body_lr_multiplier(rule.model, "gain" if self.kind == "bias" else self.kind, opt, self.m)

    @classmethod
    def from_dict(cls, data: Mapping) -> ParamPlan:
        return cls(**{**data, "shape": tuple(data["shape"]), "base_shape": tuple(data["base_shape"])})


@dataclass(frozen=True)
class WidthPlan:
    """``{parameter name: ParamPlan}`` for every parameter of a model, in the model's order (names without
    wrapper segments: :func:`canonical_name`). Build one with :func:`width_plan`."""

    params: dict[str, ParamPlan] = field(hash=False)

    def kinds(self) -> dict[str, str]:
        """``{name: kind}``."""
        return {name: p.kind for name, p in self.params.items()}

    def lr_multipliers(self, rule: WidthRule, optimizer: str) -> dict[str, float]:
        """``{name: LR multiplier}`` under ``rule`` for ``optimizer`` (adam, adamw or sgd)."""
        _check_optimizer(optimizer)
        return {name: p.lr_multiplier(rule, optimizer) for name, p in self.params.items()}

    def named_parameters(self, model: nn.Module) -> Iterator[tuple[str, ParamPlan, nn.Parameter]]:
        """``(name, plan, parameter)`` for each of ``model``'s parameters; :class:`WidthParamError` naming a
        parameter the plan does not know, or one whose shape is not the plan's."""
        seen = set()
        for raw, p in model.named_parameters():
            name = canonical_name(raw)
            if name not in self.params:
                raise WidthParamError(f"parameter {name!r} is not in the width plan (a plan of another model?)")
            plan = self.params[name]
            if tuple(p.shape) != plan.shape:
                raise WidthParamError(
                    f"parameter {name!r} has shape {tuple(p.shape)}, the plan's is {plan.shape} (another width?)"
                )
            seen.add(name)
            yield name, plan, p
        missing = [n for n in self.params if n not in seen]
        if missing:
            raise WidthParamError(f"parameter {missing[0]!r} of the width plan is not in the model")

    def param_groups(self, model: nn.Module, rule: WidthRule, optimizer: str, lr: float) -> list[dict]:
        """The optimizer's parameter groups: one per (kind, multiplier), kinds in :data:`PLAN_KINDS` order, each
        with ``lr = η·m`` and plain ``kind`` and ``lr_mult`` entries (they survive an optimizer state_dict)."""
        _check_optimizer(optimizer)
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise WidthParamError(f"learning rate must be a positive finite number, got {lr!r}")
        grouped: dict[tuple[str, float], list[nn.Parameter]] = {}
        for _, plan, p in self.named_parameters(model):
            grouped.setdefault((plan.kind, plan.lr_multiplier(rule, optimizer)), []).append(p)
        order = sorted(grouped, key=lambda key: PLAN_KINDS.index(key[0]))  # stable: first seen first
        return [{"params": grouped[k], "lr": lr * k[1], "lr_mult": k[1], "kind": k[0]} for k in order]

    def make_optimizer(
        self, model: nn.Module, rule: WidthRule, optimizer: str, lr: float, **kwargs
    ) -> torch.optim.Optimizer:
        """``torch.optim.Adam``, ``AdamW`` or ``SGD`` over :meth:`param_groups` (``kwargs`` to the optimizer)."""
        groups = self.param_groups(model, rule, optimizer, lr)
        cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[optimizer]
        return cls(groups, lr=lr, **kwargs)

    @torch.no_grad()
    def initialise(self, model: nn.Module, rule: WidthRule, generator: torch.Generator) -> None:
        """Initialise every parameter of ``model`` by ``rule``, drawing on the CPU from ``generator`` (the same
        seed gives the same model on any device): the body's matrices first, in the model's order, then the
        generators' (the order :class:`~mhc_mup.training.model.MHCLM` draws in).

        embedding ``N(0, 1)``, hidden ``N(0, 1/f)``, readout ``N(0, 1/f)`` (SP) or ``N(0, 1/(f·m))`` (µP);
        gains 1, biases 0; generators by ``rule.hc`` at each module's ``(n_s, d)``; ``fixed`` ones untouched.
        """
        entries = list(self.named_parameters(model))
        for name, plan, p in entries:
            if not plan.kind.startswith("hc_") and not plan.keep_init:
                _init_body(p, plan, rule, generator, name)
        for _, plan, p in entries:
            if plan.kind.startswith("hc_") and not plan.keep_init:
                _assign(p, _generator_init(plan, rule.hc.init(plan.n_s, plan.d), generator))

    def table(self, rule: WidthRule, optimizer: str = "adam") -> list[dict]:
        """One row per parameter: name, kind, shape, base shape, m and the LR multiplier under ``rule``."""
        mult = self.lr_multipliers(rule, optimizer)
        return [{"name": n, "kind": p.kind, "shape": p.shape, "base_shape": p.base_shape, "m": p.m,
                 f"lr_mult_{optimizer}": mult[n]} for n, p in self.params.items()]  # fmt: skip

    def to_dict(self) -> dict:
        """JSON-able: ``{"params": {name: {field: value}}}``."""
        return {"params": {name: {**asdict(p), "shape": list(p.shape), "base_shape": list(p.base_shape)}
                           for name, p in self.params.items()}}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping) -> WidthPlan:
        """Inverse of :meth:`to_dict`; :class:`WidthParamError` for a dict that is not a plan's."""
        try:
            return cls({str(name): ParamPlan.from_dict(p) for name, p in data["params"].items()})
        except (KeyError, TypeError, AttributeError) as exc:
            raise WidthParamError(f"not a width plan's dict: {type(exc).__name__} {exc}") from None


def _check_optimizer(optimizer: str) -> None:
    if optimizer not in OPTIMIZERS:
        raise WidthParamError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")


def _assign(p: torch.Tensor, value: torch.Tensor) -> None:
    """``p ← value`` (drawn whole on the CPU); a DTensor parameter (FSDP2's ``fully_shard``) takes its shards."""
    if hasattr(p, "device_mesh") and hasattr(p, "placements"):
        from torch.distributed.tensor import distribute_tensor

        value = distribute_tensor(value.to(p.device_mesh.device_type), p.device_mesh, p.placements)
    p.copy_(value)


def _init_body(p: torch.Tensor, plan: ParamPlan, rule: WidthRule, generator: torch.Generator, name: str) -> None:
    """One non-generator parameter by ``rule`` (its kind's closed form)."""
    if plan.kind == "gain":
        p.fill_(1.0)
    elif plan.kind == "bias":
        p.zero_()
    elif plan.kind in ("embedding", "hidden", "readout"):
        std = body_init_std(rule.model, plan.kind, plan.fan_in, plan.m)
        _assign(p, torch.randn(p.shape, generator=generator) * std)
    elif plan.kind != "fixed":
        raise WidthParamError(f"parameter {name!r}: no init for kind {plan.kind!r}")


def _per_gate(values: tuple[float, float, float], gates: str, n_s: int) -> torch.Tensor:
    """A gate's value per entry along the gate axis: ``v4`` rows, ``alpha`` columns, or one gate's scalar."""
    if gates == "v4":  # rows [0, n) pre, [n, 2n) post, [2n, 2n + n²) comb
        return torch.cat([torch.full((count,), v) for count, v in zip((n_s, n_s, n_s * n_s), values, strict=True)])
    if gates == "alpha":
        return torch.tensor([values[0]] + [values[2]] * n_s)
    return torch.tensor(values[GATES.index(gates)])


def _generator_init(plan: ParamPlan, init: GeneratorInit, generator: torch.Generator) -> torch.Tensor:
    """A generator tensor of ``plan``'s shape by ``init``: ``fn`` ``N(0, σ_gate²)``, ``scale`` and ``base``
    the gates' constants, laid out by ``plan.gates``."""
    n_s, shape = plan.n_s, plan.shape
    if plan.kind == "hc_fn":
        if plan.gates in ("v4", *GATES) and len(shape) == 2:  # V4's layout: GeneratorInit draws it as MHCLM does
            gate = None if plan.gates == "v4" else plan.gates
            return init.sample_fn(n_s, shape[1], generator=generator, gate=gate)
        std = _per_gate(init.sigma_w, plan.gates, n_s)
        return torch.randn(shape, generator=generator) * std
    values = init.scale if plan.kind == "hc_scale" else init.base
    if plan.gates == "v4" and plan.kind == "hc_scale":
        return torch.tensor(values)
    return torch.broadcast_to(_per_gate(values, plan.gates, n_s), shape).clone()


# ── recognising the mHC generators ─────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class GeneratorModule:
    """How to read one implementation's generator: its parameters' kinds and gate layouts, where ``n_s``
    is and which parameters keep their own init."""

    params: Mapping[str, tuple[str, str]]  # local parameter name → (kind, gates); kind "body": classify by shape
    n_s_attr: str
    keep: tuple[str, ...] = ()


_V4 = {"fn": ("hc_fn", "v4"), "scale": ("hc_scale", "v4"), "base": ("hc_base", "v4")}
_HEAD = {"fn": ("hc_fn", "pre"), "scale": ("hc_scale", "pre"), "base": ("hc_base", "pre")}
GENERATOR_MODULES: dict[str, GeneratorModule] = {
    "HyperConnection": GeneratorModule(_V4, "n_s"),
    "HeadCollapse": GeneratorModule(_HEAD, "fn.0"),
    "DeepseekV4HyperConnection": GeneratorModule(_V4, "hc_mult"),
    "DeepseekV4HyperHead": GeneratorModule({f"hc_{k}": v for k, v in _HEAD.items()}, "hc_fn.0"),
    "ManifoldConstrainedHyperConnections": GeneratorModule(
        {
            "dynamic_alpha_fn": ("hc_fn", "alpha"),
            "dynamic_beta_fn": ("hc_fn", "post"),
            "static_alpha": ("hc_base", "alpha"),
            "static_beta": ("hc_base", "post"),
            "pre_branch_scale": ("hc_scale", "pre"),
            "residual_scale": ("hc_scale", "comb"),
            "h_post_scale": ("hc_scale", "post"),
            "norm.gamma": ("body", ""),  # a gain by its shape; its RMSNorm scales by (1 + gamma), gamma from 0: kept
        },
        "num_residual_streams",
        keep=("norm.gamma",),
    ),
}
"""Class name → how its generator is laid out: ours, transformers' and hyper-connections'."""


def _n_s(module: nn.Module, spec: GeneratorModule) -> int:
    attr, _, dim = spec.n_s_attr.partition(".")
    value = getattr(module, attr)
    return int(value.shape[int(dim)] if dim else value)


def _generator_entries(model: nn.Module) -> tuple[dict[str, ParamPlan], set[str]]:
    """The plan of every generator parameter of ``model``, recognised by its module's class name; and the body
    parameters inside generator modules that keep their own init."""
    plans: dict[str, ParamPlan] = {}
    keep: set[str] = set()
    for prefix, module in model.named_modules():
        spec = GENERATOR_MODULES.get(type(module).__name__)
        if spec is None or not all(_has_param(module, local) for local in spec.params):
            continue
        n_s = _n_s(module, spec)
        d = _stream_width(module, spec, n_s)
        for local, (kind, gates) in spec.params.items():
            name = canonical_name(f"{prefix}.{local}" if prefix else local)
            if kind == "body":
                keep.update([name] if local in spec.keep else [])
                continue
            shape = tuple(module.get_parameter(local).shape)
            plans[name] = ParamPlan(kind, shape, shape, n_s=n_s, d=d, gates=gates, keep_init=local in spec.keep)
    return plans, keep


def _has_param(module: nn.Module, local: str) -> bool:
    try:
        module.get_parameter(local)
    except AttributeError:
        return False
    return True


def _stream_width(module: nn.Module, spec: GeneratorModule, n_s: int) -> int:
    """``d``: V4's ``fn`` has ``n_s·d`` columns; hyper-connections' ``dynamic_alpha_fn`` is ``(p, d, 1+n_s)``."""
    if "dynamic_alpha_fn" in spec.params:
        return int(module.get_parameter("dynamic_alpha_fn").shape[-2])
    fn = next(local for local, (kind, _) in spec.params.items() if kind == "hc_fn")
    return int(module.get_parameter(fn).shape[-1]) // n_s


# ── the body: classification by growing dimensions ─────────────────────────────────────────────
def _transposed(model: nn.Module) -> set[str]:
    """Parameters stored ``(fan-in, fan-out)``: the weights of ``nn.Embedding`` / ``nn.EmbeddingBag``."""
    return {
        canonical_name(f"{prefix}.weight" if prefix else "weight")
        for prefix, module in model.named_modules()
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag))
    }


def _classify(
    name: str, shape: tuple[int, ...], base: tuple[int, ...], other: tuple[int, ...], transposed: bool
) -> ParamPlan:
    """The plan of one body parameter: ``shape`` in the model, ``base`` in the base model, ``other`` in the model
    that says which dimensions grow (a delta model, or the model itself)."""
    if len(shape) != len(base) or len(other) != len(base):
        raise WidthParamError(
            f"parameter {name!r} has shape {shape} here and {base} in the base model: not the same architecture"
        )
    grows = [a != b for a, b in zip(other, base, strict=True)]
    if not any(grows):
        return ParamPlan("fixed", shape, base, fan_in=shape[-1] if shape else 1, keep_init=True)
    if len(shape) == 1:
        kind = "bias" if name.rsplit(".", 1)[-1] == "bias" else "gain"
        return ParamPlan(kind, shape, base, m=shape[0] / base[0])
    fan_in, fan_out = (0, 1) if transposed else (len(shape) - 1, len(shape) - 2)
    for dim, grown in enumerate(grows):
        if grown and dim not in (fan_in, fan_out):
            raise WidthParamError(
                f"parameter {name!r}: dimension {dim} grows ({base[dim]} in the base model, {shape[dim]} here); "
                "no rule covers a growing dimension other than the fan-in and fan-out"
            )
    ratio = {dim: shape[dim] / base[dim] for dim in (fan_in, fan_out)}
    kind = "hidden" if grows[fan_in] and grows[fan_out] else "readout" if grows[fan_in] else "embedding"
    m = ratio[fan_out] if kind == "embedding" else ratio[fan_in]
    return ParamPlan(kind, shape, base, fan_in=shape[fan_in], m=m)


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {canonical_name(n): tuple(p.shape) for n, p in model.named_parameters()}


def width_plan(
    model: nn.Module, base: nn.Module | None, delta: nn.Module | None = None, *, kinds: Mapping[str, str] | None = None
) -> WidthPlan:
    """The width plan of ``model`` against ``base``, the same architecture at another width (build it on the
    ``meta`` device: only shapes are read). Where ``model`` has ``base``'s width, pass ``delta``, a third
    width: the dimensions that differ between ``base`` and ``delta`` are the ones that grow (mup's ``delta``).
    ``kinds`` overrides the kind of body parameters whose name matches a pattern (``fnmatch``), e.g.
    ``{"*.position_bias": "bias"}`` for an additive table that its shape would call a readout; the
    multiplier ``m`` stays the one its growing dimension gives.

    Raises :class:`WidthParamError` naming the parameter for a missing base, a parameter the base lacks, a
    shape of another rank, or a dimension that grows where no rule covers it (and naming an override that
    matches no parameter or names no body kind).
    """
    if base is None:
        raise WidthParamError(
            "a width plan needs a base model: the same architecture at another width (as mup's base shapes)"
        )
    shapes, bases = _shapes(model), _shapes(base)
    others = _shapes(delta) if delta is not None else shapes
    generators, keep = _generator_entries(model)
    transposed = _transposed(model)
    params = {}
    for name, shape in shapes.items():
        if name in generators:
            params[name] = generators[name]
            continue
        for other, what in ((bases, "base"), (others, "delta")):
            if name not in other:
                raise WidthParamError(f"parameter {name!r} is not in the {what} model: not the same architecture")
        params[name] = _classify(name, shape, bases[name], others[name], name in transposed)
        if name in keep:  # a body parameter inside a generator module with an init of its own
            params[name] = replace(params[name], keep_init=True)
    params = _override(params, kinds or {})
    if all(p.kind == "fixed" for p in params.values()):
        raise WidthParamError(
            "no dimension of any parameter differs from the base model: build the base at another width, or pass "
            "delta= at a third width"
        )
    return WidthPlan(params)


BODY_KINDS = ("embedding", "hidden", "readout", "gain", "bias", "fixed")


def _override(params: dict[str, ParamPlan], kinds: Mapping[str, str]) -> dict[str, ParamPlan]:
    """``params`` with the kinds that ``kinds`` (pattern → kind) sets on matching body parameters."""
    out = dict(params)
    for pattern, kind in kinds.items():
        if kind not in BODY_KINDS:
            raise WidthParamError(f"kind override {pattern!r}: {kind!r} is not one of {', '.join(BODY_KINDS)}")
        hits = [n for n, p in params.items() if fnmatch.fnmatchcase(n, pattern) and not p.kind.startswith("hc_")]
        if not hits:
            raise WidthParamError(f"kind override {pattern!r} matches no body parameter")
        for name in hits:
            out[name] = replace(params[name], kind=kind, keep_init=kind == "fixed")
    return out
