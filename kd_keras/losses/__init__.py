"""Distillation losses, each a `keras.losses.Loss` with a functional twin.

Called as `loss(teacher_outputs, student_outputs)`; losses that need the
ground truth as `loss(teacher_outputs, student_outputs, labels=y)`. The
feature losses (`FitNet`, `AttentionTransfer`, `RKD`, `SP`, `PKT`, `CC`,
`NST`) receive the outputs of the layers they name. `LogitsDistillation`
and `FeatureDistillation` are `keras.distillation`'s, with its arguments.
"""

from kd_keras.losses.attention import (
    AttentionTransfer,
    attention_map,
    attention_transfer,
)
from kd_keras.losses.base import DistillationLoss, TemperatureLoss
from kd_keras.losses.cc import CC, cc
from kd_keras.losses.combined import distillation_loss
from kd_keras.losses.dist import DIST, dist
from kd_keras.losses.dkd import DKD, dkd, nckd, tckd
from kd_keras.losses.fitnet import FitNet, fitnet_hint
from kd_keras.losses.keras_distillation import (
    FeatureDistillation,
    LogitsDistillation,
)
from kd_keras.losses.logits import (
    KD,
    LogitMSE,
    SoftenedLoss,
    SoftTargetCrossEntropy,
    kd,
    logit_mse,
    soft_target_crossentropy,
)
from kd_keras.losses.multilabel import MultiLabelKD, multilabel_kd
from kd_keras.losses.nkd import NKD, nkd
from kd_keras.losses.nst import NST, nst
from kd_keras.losses.pkt import PKT, pkt
from kd_keras.losses.regression import RegressionKD, regression_kd
from kd_keras.losses.rkd import RKD, rkd, rkd_angle, rkd_distance
from kd_keras.losses.sp import SP, sp
from kd_keras.losses.wsld import WSLD, wsld, wsld_weight

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
    "SP",
    "PKT",
    "CC",
    "NST",
    "NKD",
    "WSLD",
    "LogitsDistillation",
    "FeatureDistillation",
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
    "sp",
    "pkt",
    "cc",
    "nst",
    "nkd",
    "wsld",
    "wsld_weight",
]
