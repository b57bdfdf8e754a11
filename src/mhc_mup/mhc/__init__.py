"""The mathematics of V4's mHC as pure functions on tensors, with no I/O.

``ops`` (the Sinkhorn projection, ``hc_pre``, ``hc_post``, the head collapse: the specification every
other path is checked against), ``gauge`` (the Sinkhorn gauge and the Birkhoff tangent space),
``jacobians`` (batched closed-form Jacobians), ``expressions`` and ``parameterizations`` (init and
learning-rate rules as functions of ``n_s`` and ``d``), ``presets`` (V4-Pro, V4-Flash, the seed's).
"""

from typing import TYPE_CHECKING

from mhc_mup._lazy import lazy_exports

if TYPE_CHECKING:  # the public names, read by type checkers and editors and by lazy_exports
    from mhc_mup.mhc.expressions import Expr
    from mhc_mup.mhc.gauge import gauge_projector, perp_projector, project_perp, tangent_basis
    from mhc_mup.mhc.jacobians import (
        gate_jacobian_norms,
        generator_jacobian,
        mixes_jacobian,
        sinkhorn_jacobian,
        sinkhorn_jacobians,
        sinkhorn_jvp,
        top_singular_value,
    )
    from mhc_mup.mhc.ops import (
        HC_EPS,
        NORM_EPS,
        HCWeights,
        collapse,
        gate_logits,
        hc_head,
        hc_mixes,
        hc_post,
        hc_pre,
        hc_weights,
        rms_rsqrt,
        sinkhorn_knopp,
        split_mixes,
    )
    from mhc_mup.mhc.parameterizations import (
        OPTIMIZERS,
        PARAMETERIZATIONS,
        SEED_INIT,
        GeneratorInit,
        Parameterization,
        get_parameterization,
        parameterization,
        parse_spec,
    )
    from mhc_mup.mhc.presets import PRESETS, MHCConfig, MHCShape, preset

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    __file__,
    submodules=("ops", "gauge", "jacobians", "expressions", "parameterizations", "presets"),
)
