"""Distillation losses, each a `keras.losses.Loss` with a functional twin.

Called as `loss(teacher_outputs, student_outputs)`.
"""

from kd_keras.losses.combined import distillation_loss
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
    "distillation_loss",
    "kd",
    "logit_mse",
    "soft_target_crossentropy",
]
