"""Real mHC implementations and checkpoints: adapters (transformers' DeepSeek-V4, hyper-connections, any
function), the diagnostics run through an adapter, and reading a safetensors checkpoint's mHC tensors."""

from mhc_mup._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "mhc_mup.interop.adapters": (
            "ADAPTER_BUILDERS", "FunctionAdapter", "HyperConnectionsAdapter", "MHCAdapter", "TransformersV4Adapter",
            "V4HeadParams", "V4Params",
        ),
        "mhc_mup.interop.adapter_diagnostics": ("diagnose", "summarize", "sweep_adapter"),
        "mhc_mup.interop.inspection": ("Inspection", "inspect_checkpoint"),
    },
    submodules=("adapters", "adapter_diagnostics", "checkpoint", "inspection"),
)  # fmt: skip
