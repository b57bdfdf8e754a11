"""The mathematics of V4's mHC as pure functions on tensors, with no I/O.

``ops`` (the Sinkhorn projection, ``hc_pre``, ``hc_post``, the head collapse: the specification every
other path is checked against), ``gauge`` (the Sinkhorn gauge and the Birkhoff tangent space),
``jacobians`` (batched closed-form Jacobians), ``expressions`` and ``parameterizations`` (init and
learning-rate rules as functions of ``n_s`` and ``d``), ``presets`` (V4-Pro, V4-Flash, the seed's).
"""

from mhc_mup._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "mhc_mup.mhc.ops": (
            "HC_EPS", "NORM_EPS", "HCWeights", "collapse", "gate_logits", "hc_head", "hc_mixes", "hc_post",
            "hc_pre", "hc_weights", "rms_rsqrt", "sinkhorn_knopp", "split_mixes",
        ),
        "mhc_mup.mhc.gauge": ("gauge_projector", "perp_projector", "project_perp", "tangent_basis"),
        "mhc_mup.mhc.jacobians": (
            "gate_jacobian_norms", "generator_jacobian", "mixes_jacobian", "sinkhorn_jacobian", "sinkhorn_jacobians",
            "sinkhorn_jvp", "top_singular_value",
        ),
        "mhc_mup.mhc.expressions": ("Expr",),
        "mhc_mup.mhc.parameterizations": (
            "OPTIMIZERS", "PARAMETERIZATIONS", "SEED_INIT", "GeneratorInit", "Parameterization",
            "get_parameterization", "parameterization", "parse_spec",
        ),
        "mhc_mup.mhc.presets": ("PRESETS", "MHCConfig", "MHCShape", "preset"),
    },
    submodules=("ops", "gauge", "jacobians", "expressions", "parameterizations", "presets"),
)
