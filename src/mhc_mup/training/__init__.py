"""The mHC language model in training: the model and its control, the width rules, the data, the train
step, the coordinate check and the learning-rate transfer sweep.

``config`` (what both experiments share: ``ModelShape``, ``TrainingRecipe``), ``model`` (``MHCLM``: V4-style
mHC sublayers, or the plain-residual control), ``width_rules`` (SP and µP: init and learning-rate multipliers
per parameter group), ``plan`` (the width plan: the same rules for any model, from a base model at another
width), ``data`` (byte corpora), ``step`` (one training step, shared by both experiments),
``graphed`` (the same step replayed from one CUDA graph), ``coordcheck`` and ``transfer``.
"""

from typing import TYPE_CHECKING

from mhc_mup._lazy import lazy_exports

if TYPE_CHECKING:  # the public names, read by type checkers and editors and by lazy_exports
    from mhc_mup.training.config import ModelShape, TrainingRecipe
    from mhc_mup.training.coordcheck import (
        CoordCheckConfig,
        CoordCheckResult,
        ModelCoordCheckConfig,
        coord_check,
        plot_coords,
        run_coord_check,
        write_coord_check,
    )
    from mhc_mup.training.data import Corpus, load_corpus, sample_batch
    from mhc_mup.training.graphed import GraphedSteps, graph_ready_optimizer, lr_table
    from mhc_mup.training.model import MHCLM, ModelConfig
    from mhc_mup.training.model_transfer import ModelTransferConfig, ModelTransferResult, run_model_transfer
    from mhc_mup.training.plan import ParamPlan, WidthPlan, WidthRule, width_plan
    from mhc_mup.training.step import eval_loss, train_step
    from mhc_mup.training.transfer.analysis import TransferResult, analyse
    from mhc_mup.training.transfer.config import TransferConfig
    from mhc_mup.training.transfer.sweep import run_transfer
    from mhc_mup.training.width_rules import WidthParameterization, make_optimizer, param_groups

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    __file__,
    submodules=(
        "config", "model", "width_rules", "plan", "data", "step", "graphed", "coordcheck", "model_transfer", "transfer",
    ),
)
