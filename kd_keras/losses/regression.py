"""Distillation of regression models: the student regresses the teacher."""

import keras

from kd_keras.hyperparameters import check_positive
from kd_keras.losses.base import PACKAGE, DistillationLoss, as_float32
from kd_keras.losses.logits import logit_mse

_LOSSES = ("mse", "huber")


def _check_loss(loss):
    if not isinstance(loss, str) or loss not in _LOSSES:
        raise ValueError(
            f"loss must be one of {', '.join(map(repr, _LOSSES))}. "
            f"Received: loss={loss!r}"
        )
    return loss


def regression_kd(teacher_outputs, student_outputs, loss="mse", delta=1.0):
    """Error of the student's outputs against the teacher's, per sample.

    The functional form of `RegressionKD`; see `RegressionKD` for the
    formula and references.

    Args:
        teacher_outputs: Teacher outputs, shape `(batch, ..., units)`.
        student_outputs: Student outputs, same shape.
        loss: `"mse"` (squared error) or `"huber"`. Defaults to `"mse"`.
        delta: Where the Huber loss turns from quadratic to linear.
            Defaults to `1.0`.

    Returns:
        The error averaged over the last axis, one value per sample.

    Example:

    >>> teacher, student = [[1.0, 2.0]], [[0.0, 0.0]]
    >>> float(kd_keras.losses.regression_kd(teacher, student)[0])
    2.5
    >>> huber = kd_keras.losses.regression_kd(teacher, student, "huber")
    >>> float(huber[0])  # (0.5 + 1.5) / 2
    1.0
    """
    if _check_loss(loss) == "mse":
        return logit_mse(teacher_outputs, student_outputs)
    t, s = as_float32(teacher_outputs, student_outputs)
    return keras.losses.huber(t, s, delta=delta)


@keras.saving.register_keras_serializable(package=PACKAGE)
class RegressionKD(DistillationLoss):
    """Regression distillation: the student regresses the teacher's outputs.

    A regression teacher has no class probabilities to soften; its
    outputs themselves are the targets. The squared error is the plain
    choice; the Huber loss keeps the pull of the teacher's worst outliers
    linear instead of quadratic. Chen et al. distil a detector's box
    regression against the teacher's outputs (their teacher-bounded
    variant, which also uses the ground truth, is not this loss); Saputra
    et al. distil a pose regressor.

    Formula:

    ```python
    error = student_outputs - teacher_outputs
    # loss="mse"
    loss = mean(square(error), axis=-1)
    # loss="huber", as keras.losses.Huber
    loss = mean(where(abs(error) <= delta,
                      0.5 * square(error),
                      delta * abs(error) - 0.5 * delta**2), axis=-1)
    ```

    Args:
        loss: `"mse"` or `"huber"`. Defaults to `"mse"`.
        delta: Where the Huber loss turns from quadratic to linear,
            `> 0`; unused by `"mse"`. Defaults to `1.0`.
        reduction: Keras loss reduction. Defaults to
            `"sum_over_batch_size"`.
        name: Name of the loss. Defaults to `"regression_kd"`.
        dtype: Dtype of the computation. Defaults to `None` (float32).

    Example:

    >>> loss = kd_keras.losses.RegressionKD("huber", delta=1.0)
    >>> float(loss([[0.0, 0.0]], [[0.5, 3.0]]))  # (0.125 + 2.5) / 2
    1.3125

    References:
        - [Chen et al., 2017](
          https://papers.nips.cc/paper/2017/hash/e1e32e235eee1f970470a3a6658dfdd5-Abstract.html)
        - [Saputra et al., 2019](https://arxiv.org/abs/1908.00858)
    """

    config_names = ("loss", "delta")

    def __init__(
        self,
        loss="mse",
        delta=1.0,
        reduction="sum_over_batch_size",
        name="regression_kd",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.loss = _check_loss(loss)
        self.delta = check_positive("delta", delta)

    def call(self, y_true, y_pred):
        return regression_kd(y_true, y_pred, loss=self.loss, delta=self.delta)
