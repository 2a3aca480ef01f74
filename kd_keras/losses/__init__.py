"""Distillation losses, each a `keras.losses.Loss` with a functional twin.

Called as `loss(teacher_outputs, student_outputs)`; losses that need the
ground truth as `loss(teacher_outputs, student_outputs, labels=y)`. The
feature losses (`FitNet`, `AttentionTransfer`, `RKD`) receive the outputs of
the layers they name.
"""

from kd_keras.losses.combined import distillation_loss
from kd_keras.losses.dist import DIST, dist
from kd_keras.losses.dkd import DKD, dkd, nckd, tckd
from kd_keras.losses.features import (
    RKD,
    AttentionTransfer,
    FitNet,
    attention_map,
    attention_transfer,
    fitnet_hint,
    rkd,
    rkd_angle,
    rkd_distance,
)
from kd_keras.losses.logits import (
    KD,
    DistillationLoss,
    LogitMSE,
    SoftenedLoss,
    SoftTargetCrossEntropy,
    TemperatureLoss,
    kd,
    logit_mse,
    soft_target_crossentropy,
)
from kd_keras.losses.multilabel import MultiLabelKD, multilabel_kd
from kd_keras.losses.regression import RegressionKD, regression_kd

__all__ = [
    "KD",
    "DKD",
    "DIST",
    "DistillationLoss",
    "TemperatureLoss",
    "LogitMSE",
    "MultiLabelKD",
    "RegressionKD",
    "SoftTargetCrossEntropy",
    "SoftenedLoss",
    "FitNet",
    "AttentionTransfer",
    "RKD",
    "distillation_loss",
    "dist",
    "dkd",
    "kd",
    "logit_mse",
    "multilabel_kd",
    "nckd",
    "regression_kd",
    "soft_target_crossentropy",
    "tckd",
    "fitnet_hint",
    "attention_map",
    "attention_transfer",
    "rkd",
    "rkd_distance",
    "rkd_angle",
]
