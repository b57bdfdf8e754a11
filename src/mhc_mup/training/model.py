"""A small DeepSeek-V4-style mHC language model and its plain-residual control.

mHC model (``hc=True``), with ``B`` batch, ``T`` tokens, ``n_s`` streams of width ``d``::

    x = embed(tokens)                         (B, T, d) → copied into n_s streams (B, T, n_s, d)
    for each block, for f in (attention, MLP):
        y, post, comb = hc_pre(x)             y = Σ_i pre[i]·x[i]                       (B, T, d)
        x = hc_post(f(RMSNorm(y)), x, ...)    x[o] ← post[o]·f(·) + Σ_i comb[i, o]·x[i]  (B, T, n_s, d)
    logits = readout(RMSNorm(hc_head(x)))     (B, T, vocab)

The control (``hc=False``) has the same embedding, blocks and readout on one stream with the usual
pre-norm residual ``x ← x + f(RMSNorm(x))`` and no mHC parameter. The sublayers and the head are the
drop-in modules of :mod:`mhc_mup.nn`; the mHC math calls :mod:`mhc_mup.mhc.ops` (on CUDA, by default, the
fused kernels of :mod:`mhc_mup.kernels.fused`, which compute the same function) and runs in fp32 even
under autocast, as V4 does; branches follow the autocast context (bf16 on CUDA in the coordinate check).
Identity "taps" expose the gate pre-activations (``pre_logits``, ``post_logits``, ``comb_logits``,
``head.logits``) to forward hooks.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from mhc_mup.errors import ModelConfigError
from mhc_mup.kernels import fused
from mhc_mup.mhc.ops import HC_EPS, NORM_EPS
from mhc_mup.nn.modules import HeadCollapse, HyperConnection, MHCSublayer, Tap, expand_streams, norm_input
from mhc_mup.training.width_rules import HC_KINDS, WidthParameterization, parameter_kind

__all__ = [
    "ATTENTION_CHOICES", "MHCLM", "MLP", "STREAM_DTYPES", "WITHOUT_CUDNN", "Attention", "Block", "HeadCollapse",
    "HyperConnection", "ModelConfig", "Sublayer", "Tap", "attention_backends", "stream_probe",
]  # fmt: skip

STREAM_DTYPES = ("float32", "bfloat16")
ATTENTION_CHOICES = ("auto", "no-cudnn")
WITHOUT_CUDNN = (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH)
"""The scaled-dot-product-attention backends that ``"no-cudnn"`` leaves PyTorch to choose from (``sdpa_kernel`` also
turns off the "overrideable" one, a hook for other devices' extensions, which neither CUDA nor the CPU uses)."""
_UNUSED_DRAWS = torch.Generator()
"""Where the drop-in modules draw their own init, which :meth:`MHCLM.reset_parameters` overwrites: not torch's
global RNG, so that building an MHCLM consumes it exactly as before the modules initialised themselves."""


def stream_probe(n_s: int, d: int, stream_dtype: str, device: torch.device) -> torch.Tensor:
    """An empty ``(0, n_s, d)`` stream tensor of the model's storage, to ask
    :func:`mhc_mup.kernels.fused.use_triton` which path the mHC ops take."""
    return torch.empty(0, n_s, d, dtype=getattr(torch, stream_dtype), device=device)


@dataclass(frozen=True)
class ModelConfig:
    """Shape of :class:`MHCLM`: width ``d``, ``depth`` blocks of attention (``heads`` heads of
    ``d/heads``) and MLP (hidden ``mlp_ratio·d``), ``n_s`` streams, ``K`` Sinkhorn iterations,
    byte vocabulary; ``hc=False`` builds the plain-residual control. ``stream_dtype`` is the storage
    dtype of the residual stream(s) between sublayers: ``"float32"``, or ``"bfloat16"`` as V4 stores them
    (for training under bf16 autocast; the mHC math stays fp32 either way). ``qk_norm``: RMS-normalise each
    head's queries and keys before their product (:class:`Attention`)."""

    d: int = 64
    depth: int = 2
    heads: int = 4
    n_s: int = 4
    K: int = 20
    vocab: int = 256
    mlp_ratio: int = 4
    hc: bool = True
    hc_eps: float = HC_EPS
    norm_eps: float = NORM_EPS
    stream_dtype: str = "float32"
    qk_norm: bool = False

    def __post_init__(self) -> None:
        for name, low in (("d", 1), ("depth", 1), ("heads", 1), ("n_s", 2), ("K", 1), ("vocab", 2), ("mlp_ratio", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ModelConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.d % self.heads:
            raise ModelConfigError(f"width d={self.d} is not divisible by heads={self.heads}")
        if not (self.hc_eps >= 0 and self.norm_eps >= 0):
            raise ModelConfigError(f"hc_eps and norm_eps must be >= 0, got {self.hc_eps!r}, {self.norm_eps!r}")
        if self.stream_dtype not in STREAM_DTYPES:
            raise ModelConfigError(f"stream_dtype must be one of {', '.join(STREAM_DTYPES)}, got {self.stream_dtype!r}")
        if not isinstance(self.qk_norm, bool):
            raise ModelConfigError(f"qk_norm must be True or False, got {self.qk_norm!r}")

    @property
    def d_head(self) -> int:
        return self.d // self.heads

    def replace(self, **changes: object) -> ModelConfig:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def attention_backends(choice: str) -> contextlib.AbstractContextManager:
    """The context in which :class:`Attention` runs under setting ``choice`` (:data:`ATTENTION_CHOICES`; a
    ``ValueError`` naming another). ``"auto"``: nothing changes, PyTorch picks a kernel per shape (cuDNN's first on
    H100-class GPUs with a recent cuDNN). ``"no-cudnn"``: ``F.scaled_dot_product_attention`` picks among
    :data:`WITHOUT_CUDNN` only (``torch.nn.attention.sdpa_kernel``): the same function, other kernels.

    The backend flags are the process's (every thread and stream), set on entry and restored on exit, after an
    exception too. A CUDA graph records the kernels chosen while it is captured, and ``torch.compile`` fixes the
    kernel in the graph it traces (Dynamo does not guard on the flags; see
    :func:`~mhc_mup.training.graphed.compiled`): what counts is that the context is in force while a step is
    traced, captured or run eagerly. Inside ``"no-cudnn"``, torch.compile's cache keys are tagged
    (``torch.compiler.config.cache_key_tag``), so that its on-disk caches, whose keys ignore the flags, never
    hand a graph traced under one setting to the other."""
    if choice not in ATTENTION_CHOICES:
        raise ValueError(f"attention must be one of {', '.join(ATTENTION_CHOICES)}, got {choice!r}")
    return contextlib.nullcontext() if choice == "auto" else _without_cudnn()


@contextlib.contextmanager
def _without_cudnn() -> Iterator[None]:
    tag = f"{torch.compiler.config.cache_key_tag}+sdpa-without-cudnn"
    # patch: added to torch's config modules at import (install_config_module), unseen by type checkers
    with sdpa_kernel(list(WITHOUT_CUDNN)), torch.compiler.config.patch(cache_key_tag=tag):  # type: ignore[attr-defined]
        yield


class Attention(nn.Module):
    """Causal multi-head self-attention without biases: ``softmax(q·kᵀ · scale + causal mask)·v``,
    ``(B, T, d)`` → ``(B, T, d)``; ``scale`` is set by the width parameterization. ``qk_norm``: each head's
    queries and keys pass an RMSNorm over ``d_head`` with a learned gain (``q_norm``, ``k_norm``) first, which
    bounds the logits by ``d_head · scale · |gain_q|·|gain_k|`` (Dehghani et al. 2023; Wortsman et al. 2023)."""

    def __init__(self, d: int, heads: int, scale: float, qk_norm: bool = False, norm_eps: float = NORM_EPS) -> None:
        super().__init__()
        self.heads, self.scale = heads, scale
        self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.q_norm, self.k_norm = (
            nn.RMSNorm(d // heads, eps=norm_eps) if qk_norm else nn.Identity() for _ in range(2)
        )

    def _split_heads(self, h: torch.Tensor, norm: nn.Module | None = None) -> torch.Tensor:
        """``h`` ``(B, T, d)`` as ``(B, heads, T, d_head)``, each head passed through ``norm`` (in the gain's
        dtype, back in ``h``'s) when one is given."""
        B, T, d = h.shape
        h = h.view(B, T, self.heads, d // self.heads)
        if norm is not None:
            h = norm(norm_input(h, norm)).to(h.dtype)
        return h.transpose(1, 2)

    def queries_keys(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(q, k)`` of ``x`` ``(B, T, d)``, each ``(B, heads, T, d_head)`` in ``x``'s compute dtype: the
        projections, per head RMS-normalised (in the gain's dtype) when the layer has ``qk_norm``."""
        return self._split_heads(self.q(x), self.q_norm), self._split_heads(self.k(x), self.k_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape
        q, k = self.queries_keys(x)
        y = F.scaled_dot_product_attention(q, k, self._split_heads(self.v(x)), is_causal=True, scale=self.scale)
        return self.o(y.transpose(1, 2).reshape(B, T, d))


class MLP(nn.Module):
    """``down(GELU(up(x)))``, ``(..., d)`` → ``(..., d)`` through a hidden width ``ratio·d``."""

    def __init__(self, d: int, ratio: int) -> None:
        super().__init__()
        self.up = nn.Linear(d, ratio * d, bias=False)
        self.down = nn.Linear(ratio * d, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


class Sublayer(MHCSublayer):
    """One residual sublayer of :class:`MHCLM`: the drop-in :class:`~mhc_mup.nn.MHCSublayer` built from the
    model's config, ``hc_post(f(RMSNorm(y)), x, post, comb)`` with ``(y, post, comb) = hc_pre(x)`` (mHC, ``x``
    ``(B, T, n_s, d)``), or ``x + f(RMSNorm(x))`` (control, ``x`` ``(B, T, d)``)."""

    def __init__(self, cfg: ModelConfig, branch: nn.Module) -> None:
        super().__init__(branch, cfg.d, cfg.n_s if cfg.hc else None, K=cfg.K, hc_eps=cfg.hc_eps,
                         norm_eps=cfg.norm_eps, generator=_UNUSED_DRAWS)  # fmt: skip


class Block(nn.Module):
    """An attention sublayer then an MLP sublayer; the output is the residual stream."""

    def __init__(self, cfg: ModelConfig, attn_scale: float) -> None:
        super().__init__()
        self.attn = Sublayer(cfg, Attention(cfg.d, cfg.heads, attn_scale, cfg.qk_norm, cfg.norm_eps))
        self.mlp = Sublayer(cfg, MLP(cfg.d, cfg.mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.attn(x))


class MHCLM(nn.Module):
    """Byte-level causal LM: ``tokens`` ``(B, T)`` int64 → next-token logits ``(B, T, vocab)``.

    ``config`` fixes the shape; ``param`` (a :class:`WidthParameterization`) the init, the
    attention scale and, through :func:`~mhc_mup.training.width_rules.param_groups`, the learning rates.
    Both travel with the model: as attributes under ``copy.deepcopy`` and pickling, and as the
    ``_extra_state`` entry of ``state_dict`` (:meth:`from_state_dict` rebuilds the model from it;
    loading into a model built differently is an error, never a silent mismatch).
    """

    def __init__(
        self,
        config: ModelConfig,
        param: WidthParameterization | None = None,
        *,
        seed: int | None = 0,
        kernels: str = "auto",
    ) -> None:
        super().__init__()
        self.config = config
        self.param = param or WidthParameterization()
        base_heads_width = max(1, self.param.base_d // config.heads)
        attn_scale = self.param.attention_scale(config.d_head, base_heads_width)
        self.embed = nn.Embedding(config.vocab, config.d)
        self.blocks = nn.ModuleList(Block(config, attn_scale) for _ in range(config.depth))
        self.head = (
            HeadCollapse(config.n_s, config.d, config.hc_eps, config.norm_eps, generator=_UNUSED_DRAWS)
            if config.hc
            else None
        )
        self.norm_f = nn.RMSNorm(config.d, eps=config.norm_eps)
        self.readout = nn.Linear(config.d, config.vocab, bias=False)
        self.set_kernels(kernels)
        if seed is not None:
            self.reset_parameters(torch.Generator().manual_seed(seed))

    def set_kernels(self, kernels: str) -> MHCLM:
        """Run the mHC sublayers through ``kernels``: ``'auto'`` (fused Triton kernels on CUDA, the
        reference ops elsewhere), ``'reference'`` or ``'triton'`` (see :func:`mhc_mup.kernels.fused.use_triton`)."""
        fused.check_kernel_choice(kernels)
        self.kernels = kernels
        for module in self.modules():
            if isinstance(module, HyperConnection):
                module.kernels = kernels
        return self

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """Initialise every parameter by its rule (on CPU draws from ``generator``, so the same seed gives
        the same model on any device): matrices by :meth:`WidthParameterization.init_std`, gains 1, and
        the mHC generators by the preset's :meth:`~mhc_mup.mhc.parameterizations.Parameterization.init`."""
        cfg, param = self.config, self.param
        for name, p in self.named_parameters():
            kind = parameter_kind(name)
            if kind in HC_KINDS:
                continue
            if kind == "gain":
                p.fill_(1.0)
                continue
            std = param.init_std(kind, p.shape[-1], cfg.d)
            p.copy_(torch.randn(p.shape, generator=generator) * std)
        for module in self.modules():
            if isinstance(module, (HyperConnection, HeadCollapse)):
                module.reset_parameters(param.hc, generator)  # in module order: the draws' order

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        if self.config.stream_dtype == "bfloat16":  # "float32" keeps the parameters' dtype (fp64 in tests)
            x = x.to(torch.bfloat16)
        if self.config.hc:  # n_s copies of the embedding, materialised once (see expand_streams)
            x = expand_streams(x, self.config.n_s)
        for block in self.blocks:
            x = block(x)
        if self.head is not None:
            x = self.head(x)
        return self.readout(self.norm_f(norm_input(x, self.norm_f)))

    # ── metadata in the state_dict ────────────────────────────────────────────────────────────
    def get_extra_state(self) -> dict:
        return {"config": dataclasses.asdict(self.config), "param": self.param.to_dict()}

    def set_extra_state(self, state: Mapping) -> None:
        mine = self.get_extra_state()
        state = dict(state)
        if isinstance(state.get("config"), Mapping):  # saved before a config field existed: its default
            state["config"] = {**dataclasses.asdict(ModelConfig()), **state["config"]}
        if state != mine:
            raise ModelConfigError(
                "state_dict was saved from a different model: "
                f"{state.get('param', {}).get('model')}+{state.get('param', {}).get('hc', {}).get('name')} "
                f"config {state.get('config')} vs this model's {self.param.name} config {mine['config']}; "
                "build it with MHCLM.from_state_dict"
            )

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor]) -> MHCLM:
        """The model (config, parameterization and weights) saved by ``state_dict()``."""
        extra = state_dict.get("_extra_state")
        if not isinstance(extra, Mapping):
            raise ModelConfigError("state_dict has no _extra_state (config and parameterization); not from MHCLM")
        model = cls(ModelConfig(**extra["config"]), WidthParameterization.from_dict(extra["param"]), seed=None)
        model.load_state_dict(state_dict)
        return model

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
