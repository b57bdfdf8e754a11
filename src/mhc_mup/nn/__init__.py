"""V4's mHC as drop-in modules for your own model: :class:`MHCSublayer` wraps any branch (``hc_pre`` →
branch → ``hc_post``), :class:`HeadCollapse` collapses the streams at the head, :func:`expand_streams` fills
them from an embedding. Fused kernels on CUDA, the reference ops of :mod:`mhc_mup.mhc.ops` elsewhere."""

from mhc_mup._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "mhc_mup.nn.modules": (
            "HeadCollapse", "HyperConnection", "MHCSublayer", "Tap", "check_shape", "expand_streams", "fp32_region",
            "norm_input",
        ),
    },
    submodules=("modules",),
)  # fmt: skip
