"""Distillation losses, each a `keras.losses.Loss` with a functional twin.

Called as `loss(teacher_outputs, student_outputs)`; the feature losses
(`FitNet`, `AttentionTransfer`, `RKD`) receive the outputs of the layers
they name.
"""

from kd_keras.losses.combined import distillation_loss
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

__all__ = [
    "KD",
    "DistillationLoss",
    "TemperatureLoss",
    "LogitMSE",
    "SoftTargetCrossEntropy",
    "SoftenedLoss",
    "FitNet",
    "AttentionTransfer",
    "RKD",
    "distillation_loss",
    "kd",
    "logit_mse",
    "soft_target_crossentropy",
    "fitnet_hint",
    "attention_map",
    "attention_transfer",
    "rkd",
    "rkd_distance",
    "rkd_angle",
]
