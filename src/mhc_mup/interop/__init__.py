"""Real mHC implementations and checkpoints: adapters (transformers' DeepSeek-V4, hyper-connections, any
function), the diagnostics run through an adapter, and reading a safetensors checkpoint's mHC tensors."""

from typing import TYPE_CHECKING

from mhc_mup._lazy import lazy_exports

if TYPE_CHECKING:  # the public names, read by type checkers and editors and by lazy_exports
    from mhc_mup.interop.adapter_diagnostics import diagnose, summarize, sweep_adapter
    from mhc_mup.interop.adapters import (
        ADAPTER_BUILDERS,
        FunctionAdapter,
        HyperConnectionsAdapter,
        MHCAdapter,
        TransformersV4Adapter,
        V4HeadParams,
        V4Params,
    )
    from mhc_mup.interop.inspection import Inspection, inspect_checkpoint

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    __file__,
    submodules=("adapters", "adapter_diagnostics", "checkpoint", "inspection"),
)
