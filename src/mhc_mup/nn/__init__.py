"""V4's mHC as drop-in modules for your own model: :class:`MHCSublayer` wraps any branch (``hc_pre`` →
branch → ``hc_post``), :class:`HeadCollapse` collapses the streams at the head, :func:`expand_streams` fills
them from an embedding. Fused kernels on CUDA, the reference ops of :mod:`mhc_mup.mhc.ops` elsewhere."""

from typing import TYPE_CHECKING

from mhc_mup._lazy import lazy_exports

if TYPE_CHECKING:  # the public names, read by type checkers and editors and by lazy_exports
    from mhc_mup.nn.modules import (
        HeadCollapse,
        HyperConnection,
        MHCSublayer,
        Tap,
        check_shape,
        expand_streams,
        fp32_region,
        norm_input,
    )

__all__, __getattr__, __dir__ = lazy_exports(__name__, __file__, submodules=("modules",))
