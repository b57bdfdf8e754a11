"""The mHC language model in training: the model and its control, the width rules, the data, the train
step, the coordinate check and the learning-rate transfer sweep.

``config`` (what both experiments share: ``ModelShape``, ``TrainingRecipe``), ``model`` (``MHCLM``: V4-style
mHC sublayers, or the plain-residual control), ``width_rules`` (SP and µP: init and learning-rate multipliers
per parameter group), ``plan`` (the width plan: the same rules for any model, from a base model at another
width), ``data`` (byte corpora), ``step`` (one training step, shared by both experiments),
``graphed`` (the same step replayed from one CUDA graph), ``coordcheck`` and ``transfer``.
"""

from mhc_mup._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "mhc_mup.training.config": ("ModelShape", "TrainingRecipe"),
        "mhc_mup.training.model": ("MHCLM", "ModelConfig"),
        "mhc_mup.training.width_rules": ("WidthParameterization", "make_optimizer", "param_groups"),
        "mhc_mup.training.plan": ("ParamPlan", "WidthPlan", "WidthRule", "width_plan"),
        "mhc_mup.training.data": ("Corpus", "load_corpus", "sample_batch"),
        "mhc_mup.training.step": ("eval_loss", "train_step"),
        "mhc_mup.training.graphed": ("GraphedSteps", "graph_ready_optimizer", "lr_table"),
        "mhc_mup.training.coordcheck": (
            "CoordCheckConfig", "CoordCheckResult", "ModelCoordCheckConfig", "coord_check", "plot_coords",
            "run_coord_check", "write_coord_check",
        ),
        "mhc_mup.training.model_transfer": ("ModelTransferConfig", "ModelTransferResult", "run_model_transfer"),
        "mhc_mup.training.transfer.config": ("TransferConfig",),
        "mhc_mup.training.transfer.analysis": ("TransferResult", "analyse"),
        "mhc_mup.training.transfer.sweep": ("run_transfer",),
    },
    submodules=(
        "config", "model", "width_rules", "plan", "data", "step", "graphed", "coordcheck", "model_transfer", "transfer",
    ),
)
