"""The learning-rate transfer sweep: train every configuration × width × seed × learning rate, find each
width's optimal learning rate and fit how it drifts with width."""

from mhc_mup._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "mhc_mup.training.transfer.core": (
            "BUILTIN_CONFIGS", "Configuration", "TransferConfig", "TransferResult", "analyse", "fit_parabola",
            "load_records", "parse_configuration", "plan", "run_transfer", "write_outputs",
        ),
    },
)
