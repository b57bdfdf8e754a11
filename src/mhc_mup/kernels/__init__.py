"""The fused GPU path: V4's ``hc_pre`` and ``hc_post`` as Triton kernels behind ``torch.library`` custom ops.

``fused`` holds the ops, their autograd and the choice of path (``auto``, ``reference``, ``triton``);
``triton_kernels`` the kernels themselves, imported only where Triton is installed. The reference ops in
:mod:`mhc_mup.mhc.ops` stay the specification and the CPU path.
"""

from typing import TYPE_CHECKING

from mhc_mup._lazy import lazy_exports

if TYPE_CHECKING:  # the public names, read by type checkers and editors and by lazy_exports
    from mhc_mup.kernels.fused import (
        KERNEL_CHOICES,
        MAX_STREAMS,
        KernelChoice,
        check_kernel_choice,
        hc_post,
        hc_pre,
        hc_pre_routed,
        triton_unavailable_reason,
        use_triton,
    )

__all__, __getattr__, __dir__ = lazy_exports(__name__, __file__, submodules=("fused", "triton_kernels"))
