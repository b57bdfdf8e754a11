"""The configuration the training experiments share: the model's shape apart from its width, and the
training recipe. The coordinate check and the transfer sweep nest these; each validates itself on
construction (:class:`~mhc_mup.errors.ConfigError` naming the bad value).

The configurations that nest these read by their leaves' names through :class:`mhc_mup._nested.FlatView`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from mhc_mup.errors import ConfigError
from mhc_mup.mhc.parameterizations import OPTIMIZERS
from mhc_mup.mhc.presets import MHCShape
from mhc_mup.training.model import ModelConfig

__all__ = ["ModelShape", "TrainingRecipe", "check_at_least"]


def check_at_least(owner: object, minimum: int, names: Iterable[str]) -> None:
    """:class:`ConfigError` ``"NAME must be >= MINIMUM, got VALUE"`` for the first of ``names`` below ``minimum``."""
    for name in names:
        value = getattr(owner, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{name} must be >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class ModelShape:
    """:class:`~mhc_mup.training.model.MHCLM`'s shape apart from its width: ``depth`` blocks of ``heads``-head
    attention and an MLP, on the mHC residual ``mhc`` (``n_s`` streams, ``K`` Sinkhorn iterations, the eps);
    ``qk_norm``: attention RMS-normalises each head's queries and keys (off: the model every sweep so far used)."""

    depth: int = 2
    heads: int = 4
    mhc: MHCShape = field(default_factory=MHCShape)
    qk_norm: bool = False

    def __post_init__(self) -> None:
        check_at_least(self, 1, ("depth", "heads"))
        if not isinstance(self.qk_norm, bool):
            raise ConfigError(f"qk_norm must be True or False, got {self.qk_norm!r}")

    def check_widths(self, widths: Iterable[int]) -> None:
        """:class:`ConfigError` for the first width that is not a positive multiple of ``heads``."""
        for w in widths:
            if isinstance(w, bool) or not isinstance(w, int) or w < 1 or w % self.heads:
                raise ConfigError(f"width {w} must be a positive multiple of heads={self.heads}")

    def model_config(self, width: int, hc: bool = True, stream_dtype: str = "float32") -> ModelConfig:
        """The model at ``width``: mHC (``hc``) or the plain-residual control, streams stored as ``stream_dtype``."""
        m = self.mhc
        return ModelConfig(d=width, depth=self.depth, heads=self.heads, n_s=m.n_s, K=m.K, hc=hc,
                           hc_eps=m.hc_eps, norm_eps=m.norm_eps, stream_dtype=stream_dtype,
                           qk_norm=self.qk_norm)  # fmt: skip


@dataclass(frozen=True)
class TrainingRecipe:
    """How the model is trained: ``steps`` steps of ``optimizer`` on ``batch_size × seq_len``-byte batches
    drawn from the corpus with RNG seed ``data_seed``."""

    steps: int = 200
    batch_size: int = 16
    seq_len: int = 128
    optimizer: str = "adam"
    data_seed: int = 0

    def __post_init__(self) -> None:
        check_at_least(self, 1, ("steps", "batch_size", "seq_len"))
        check_at_least(self, 0, ("data_seed",))
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")

    @property
    def tokens(self) -> int:
        """Bytes (tokens) one run reads: ``steps × batch_size × seq_len``."""
        return self.steps * self.batch_size * self.seq_len
