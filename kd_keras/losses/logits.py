"""Logit distillation losses: Hinton KD, soft-target cross-entropy, logit MSE.

Called as `loss(teacher_logits, student_logits)`, computed in float32; see
`kd_keras.losses.base`.
"""

import keras
from keras import ops

from kd_keras.hyperparameters import (
    DEFAULT_TEMPERATURE,
    Hyperparameter,
    check_positive,
)
from kd_keras.losses.base import (
    PACKAGE,
    DistillationLoss,
    TemperatureLoss,
    as_float32,
    as_float32_logits,
)


def kd(
    teacher_logits,
    student_logits,
    temperature=DEFAULT_TEMPERATURE,
    standardize=False,
):
    """Hinton KD: `T**2 * KL(softmax(t / T) || softmax(s / T))` per sample.

    The functional form of `KD`; see `KD` for the formula and references.

    Args:
        teacher_logits: Teacher logits, shape `(batch, ..., classes)`.
        student_logits: Student logits, same shape.
        temperature: Softening temperature `T`. Defaults to `4.0`.
        standardize: Whether to z-score each sample's teacher and student
            logits before the temperature (logit standardisation, see
            `KD`). Defaults to `False`.

    Returns:
        The KL divergence summed over classes, one value per sample.

    Example:

    >>> # At T=2 the teacher's probabilities are (0.75, 0.25), the
    >>> # student's (0.5, 0.5): 4 * (0.75 ln 1.5 + 0.25 ln 0.5).
    >>> loss = kd_keras.losses.kd(
    ...     [[2 * math.log(3.0), 0.0]], [[0.0, 0.0]], temperature=2.0
    ... )
    >>> round(float(loss[0]), 4)
    0.5232
    """
    t, s = as_float32_logits(teacher_logits, student_logits, standardize)
    log_p_teacher = ops.log_softmax(t / temperature, axis=-1)
    log_p_student = ops.log_softmax(s / temperature, axis=-1)
    kl = ops.sum(
        ops.exp(log_p_teacher) * (log_p_teacher - log_p_student), axis=-1
    )
    return temperature**2 * kl


def soft_target_crossentropy(
    teacher_logits, student_logits, temperature=DEFAULT_TEMPERATURE
):
    """`T**2 * CE(softmax(t / T), softmax(s / T))` per sample.

    The functional form of `SoftTargetCrossEntropy`; see
    `SoftTargetCrossEntropy` for the formula and references.

    Args:
        teacher_logits: Teacher logits, shape `(batch, ..., classes)`.
        student_logits: Student logits, same shape.
        temperature: Softening temperature `T`. Defaults to `4.0`.

    Returns:
        The cross-entropy summed over classes, one value per sample.

    Example:

    >>> # -(0.75 ln 0.5 + 0.25 ln 0.5) = ln 2
    >>> loss = kd_keras.losses.soft_target_crossentropy(
    ...     [[math.log(3.0), 0.0]], [[0.0, 0.0]], temperature=1.0
    ... )
    >>> round(float(loss[0]), 4)
    0.6931
    """
    t, s = as_float32(teacher_logits, student_logits)
    p_teacher = ops.softmax(t / temperature, axis=-1)
    log_p_student = ops.log_softmax(s / temperature, axis=-1)
    return -(temperature**2) * ops.sum(p_teacher * log_p_student, axis=-1)


def logit_mse(teacher_logits, student_logits):
    """Mean squared error between logits, averaged over the last axis.

    The functional form of `LogitMSE`; see `LogitMSE` for the formula and
    references.

    Args:
        teacher_logits: Teacher outputs, shape `(batch, ..., units)`.
        student_logits: Student outputs, same shape.

    Returns:
        One value per sample.

    Example:

    >>> loss = kd_keras.losses.logit_mse([[1.0, 2.0]], [[0.0, 0.0]])
    >>> float(loss[0])  # (1 + 4) / 2
    2.5
    """
    t, s = as_float32(teacher_logits, student_logits)
    return ops.mean(ops.square(s - t), axis=-1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class KD(TemperatureLoss):
    """Hinton knowledge distillation loss.

    The student matches the teacher's temperature-softened class
    probabilities. The `T**2` factor keeps the gradient's scale independent
    of the temperature, so the weight against the hard-label loss does not
    need retuning when `T` changes.

    Logit standardisation (`standardize=True`, Sun et al. 2024): each
    sample's teacher and student logits are z-scored before the
    temperature, so the student matches the teacher's logit relations, not
    their range; the loss ignores any shift and positive scaling of either
    logits (up to the `1e-7`). As in the authors' code the standard
    deviation is the unbiased one (`torch.std`), `1e-7` is added to it,
    and `T**2` is kept; their runs use `T=2` and a KD weight of 9
    (cross-entropy weight 0.1).

    Formula:

    ```python
    if standardize:  # each sample's logits, along the classes
        z = lambda x: (x - mean(x)) / (1e-7 + std(x, ddof=1))
        teacher_logits, student_logits = z(teacher_logits), z(student_logits)
    p_t = softmax(teacher_logits / T)
    p_s = softmax(student_logits / T)
    loss = T**2 * sum(p_t * (log(p_t) - log(p_s)), axis=-1)
    ```

    Args:
        temperature: Softening temperature `T > 0`. Defaults to `4.0`.
        reduction: Keras loss reduction. Defaults to
            `"sum_over_batch_size"`.
        name: Name of the loss. Defaults to `"kd"`.
        dtype: Dtype of the computation. Defaults to `None` (float32).
        standardize: Whether to z-score each sample's teacher and student
            logits before the temperature. Defaults to `False`.

    Example:

    >>> loss = kd_keras.losses.KD(temperature=1.0)
    >>> float(loss([[2.0, 0.0]], [[2.0, 0.0]]))  # the same logits
    0.0
    >>> round(float(loss([[math.log(3.0), 0.0]], [[0.0, 0.0]])), 4)
    0.1308
    >>> standardized = kd_keras.losses.KD(temperature=1.0, standardize=True)
    >>> student = [[1.0, 3.0, 7.0]]  # 2 * teacher + 1: the same z-scores
    >>> round(float(standardized([[1.0, 2.0, 4.0]], student)), 6)
    0.0

    References:
        - [Hinton et al., 2015](https://arxiv.org/abs/1503.02531)
        - [Sun et al., 2024](https://arxiv.org/abs/2403.01427)
          (`standardize`; code:
          https://github.com/sunshangquan/logit-standardization-KD)
    """

    config_names = ("standardize",)

    def __init__(
        self,
        temperature=DEFAULT_TEMPERATURE,
        reduction="sum_over_batch_size",
        name="kd",
        dtype=None,
        standardize=False,
    ):
        super().__init__(
            kd, temperature, reduction, name, dtype, standardize=standardize
        )


@keras.saving.register_keras_serializable(package=PACKAGE)
class SoftTargetCrossEntropy(TemperatureLoss):
    """Cross-entropy of the student against the teacher's soft targets.

    It differs from `KD` by the teacher's entropy, a constant for the
    student, so the gradients are the same; the value is bounded below by
    that entropy instead of by 0.

    Formula:

    ```python
    loss = -T**2 * sum(softmax(t / T) * log_softmax(s / T), axis=-1)
    ```

    Args:
        temperature: Softening temperature `T > 0`. Defaults to `4.0`.
        reduction: Keras loss reduction. Defaults to
            `"sum_over_batch_size"`.
        name: Name of the loss. Defaults to `"soft_target_crossentropy"`.
        dtype: Dtype of the computation. Defaults to `None` (float32).

    Example:

    >>> loss = kd_keras.losses.SoftTargetCrossEntropy(temperature=1.0)
    >>> # KD's 0.1308 plus the teacher's entropy, 0.5623
    >>> round(float(loss([[math.log(3.0), 0.0]], [[0.0, 0.0]])), 4)
    0.6931

    References:
        - [Hinton et al., 2015](https://arxiv.org/abs/1503.02531)
    """

    def __init__(
        self,
        temperature=DEFAULT_TEMPERATURE,
        reduction="sum_over_batch_size",
        name="soft_target_crossentropy",
        dtype=None,
    ):
        super().__init__(
            soft_target_crossentropy, temperature, reduction, name, dtype
        )


@keras.saving.register_keras_serializable(package=PACKAGE)
class LogitMSE(DistillationLoss):
    """Mean squared error between teacher and student outputs.

    Ba & Caruana's logit matching for classifiers; with real-valued
    outputs it is regression distillation (see `RegressionKD`).

    Formula:

    ```python
    loss = mean(square(student_logits - teacher_logits), axis=-1)
    ```

    Args:
        reduction: Keras loss reduction. Defaults to
            `"sum_over_batch_size"`.
        name: Name of the loss. Defaults to `"logit_mse"`.
        dtype: Dtype of the computation. Defaults to `None` (float32).

    Example:

    >>> loss = kd_keras.losses.LogitMSE()
    >>> float(loss([[1.0, 2.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]))
    1.5

    References:
        - [Ba & Caruana, 2014](https://arxiv.org/abs/1312.6184)
    """

    def __init__(
        self, reduction="sum_over_batch_size", name="logit_mse", dtype=None
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return logit_mse(y_true, y_pred)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SoftenedLoss(DistillationLoss):
    """Any Keras loss applied to temperature-softened probabilities.

    The keras.io distillation example's recipe: `loss_fn` receives
    `softmax(teacher / T)` as `y_true` and `softmax(student / T)` as
    `y_pred`, and the result is multiplied by `T**2`. With
    `keras.losses.KLDivergence()` it equals `KD`. `Distiller.compile(
    distillation_loss_fn=...)` wraps its argument in this class.

    Formula:

    ```python
    loss = T**2 * loss_fn(softmax(teacher / T), softmax(student / T))
    ```

    Args:
        loss_fn: A `keras.losses.Loss` or a function
            `fn(y_true, y_pred)` returning per-sample values.
        temperature: Softening temperature `T > 0`. Defaults to `4.0`.
        reduction: Keras loss reduction. Defaults to
            `"sum_over_batch_size"`.
        name: Name of the loss. Defaults to `"softened_loss"`.
        dtype: Dtype of the computation. Defaults to `None` (float32).

    Example:

    >>> loss = kd_keras.losses.SoftenedLoss(
    ...     keras.losses.KLDivergence(), temperature=1.0
    ... )
    >>> round(float(loss([[math.log(3.0), 0.0]], [[0.0, 0.0]])), 4)  # = KD
    0.1308

    References:
        - [keras.io: Knowledge Distillation](
          https://keras.io/examples/vision/knowledge_distillation/)
    """

    softmax_based = True
    temperature = Hyperparameter(check_positive)
    config_names = ("temperature",)

    def __init__(
        self,
        loss_fn,
        temperature=DEFAULT_TEMPERATURE,
        reduction="sum_over_batch_size",
        name="softened_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not callable(loss_fn):
            raise TypeError(
                "loss_fn must be a keras.losses.Loss or a callable. "
                f"Received: loss_fn={loss_fn!r}"
            )
        self.loss_fn = loss_fn
        self.temperature = temperature

    def call(self, y_true, y_pred):
        t, s = as_float32(y_true, y_pred)
        per_sample = (
            self.loss_fn.call
            if isinstance(self.loss_fn, keras.losses.Loss)
            else self.loss_fn
        )
        values = per_sample(
            ops.softmax(t / self._temperature, axis=-1),
            ops.softmax(s / self._temperature, axis=-1),
        )
        return self._temperature**2 * values

    def get_config(self):
        return {
            **super().get_config(),
            "loss_fn": keras.saving.serialize_keras_object(self.loss_fn),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["loss_fn"] = keras.saving.deserialize_keras_object(
            config["loss_fn"]
        )
        return cls(**config)
