"""Normalized knowledge distillation: the target class and the normalised
non-target classes, each a cross-entropy of its own.

NKD splits the teacher's soft labels as DKD does: the student's true-class
probability is trained towards the teacher's, `-p_t * log(q_t)`, and the
non-target classes, each set renormalised to sum to 1, by a softened
cross-entropy weighted by `gamma`.

Checked against `NKDLoss` in `mmcls/models/dis_losses/nkd.py` of
github.com/yzd-v/cls_KD, commit 1e5d48f36957ee460d39d7ebc592c6cc7f8f3d66
(the authors' code), and its distillation configs.
"""

import keras
from keras import ops

from kd_keras.hyperparameters import check_non_negative
from kd_keras.losses.base import PACKAGE, TemperatureLoss, as_float32
from kd_keras.losses.dkd import _target_mask

# The reference's defaults (`NKDLoss(temp=1.0, gamma=1.5)`), which its
# ImageNet CNN configs use.
NKD_TEMPERATURE = 1.0
NKD_GAMMA = 1.5


def _non_target_log_softmax(logits, mask, temperature):
    """Log-softmax of `logits / T` over the non-target classes alone.

    Its entry at the target class is meaningless and must be masked: the
    target is left out of the log-sum-exp exactly, by a `-inf`, as the
    reference drops it from the row.
    """
    z = logits / temperature
    log_rest = ops.logsumexp(ops.where(mask, float("-inf"), z), axis=-1)
    return z - ops.expand_dims(log_rest, -1)


def nkd(
    teacher_logits,
    student_logits,
    labels,
    gamma=NKD_GAMMA,
    temperature=NKD_TEMPERATURE,
):
    """Normalized KD, target term plus `gamma` times the non-target term.

    The functional form of `NKD`; see `NKD` for the formula and references.

    Args:
        teacher_logits: Teacher logits, shape `(batch, classes)`.
        student_logits: Student logits, same shape.
        labels: Integer labels `(batch,)` or `(batch, 1)`, or one-hot
            labels `(batch, classes)`.
        gamma: Weight of the non-target term. Defaults to `1.5`.
        temperature: Softening temperature `T` of the non-target term.
            Defaults to `1.0`.

    Returns:
        One value per sample.

    Example:

    >>> # Teacher (1/2, 1/4, 1/4), student uniform, target 0:
    >>> # 1/2 ln 3 + 1.5 ln 2, the non-target classes (1/2, 1/2) for both.
    >>> loss = kd_keras.losses.nkd(
    ...     [[math.log(2.0), 0.0, 0.0]], [[0.0, 0.0, 0.0]], labels=[0],
    ...     gamma=1.5, temperature=1.0,
    ... )
    >>> round(float(loss[0]), 4)
    1.589
    """
    t, s = as_float32(teacher_logits, student_logits)
    mask = _target_mask(labels, t)
    # Target term, at temperature 1 whatever T.
    p_target = ops.sum(ops.where(mask, ops.softmax(t, axis=-1), 0.0), axis=-1)
    log_q_target = ops.sum(
        ops.where(mask, ops.log_softmax(s, axis=-1), 0.0), axis=-1
    )
    target = -p_target * log_q_target
    # Non-target term. Zero the target entries before `exp`: they may
    # overflow, and an inf there would make the masked-out gradient NaN.
    t_rest = ops.where(mask, 0.0, _non_target_log_softmax(t, mask, temperature))
    s_rest = ops.where(mask, 0.0, _non_target_log_softmax(s, mask, temperature))
    non_target = -ops.sum(
        ops.where(mask, 0.0, ops.exp(t_rest) * s_rest), axis=-1
    )
    return target + gamma * temperature**2 * non_target


@keras.saving.register_keras_serializable(package=PACKAGE)
class NKD(TemperatureLoss):
    """Normalized knowledge distillation (NKD).

    The KD cross-entropy splits into a target part, `-p_t * log(q_t)`, and
    a non-target part in which the teacher's probabilities sum to
    `1 - p_t` and the student's to `1 - q_t`: two distributions of
    different scales. NKD normalises the non-target probabilities of each
    to sum to 1 (a softmax over the non-target logits), softens them by
    `T` and weighs their cross-entropy by `gamma * T**2`. The target term keeps
    temperature 1, the teacher's `p_t` standing in for the one-hot label's
    1; it is added to the usual hard-label loss, not in its place.

    As the reference code, both terms are cross-entropies, not KL
    divergences: the loss is not 0 when the student equals the teacher
    (the teacher's entropies remain), and its target term still pulls
    `q_t` up. The student's gradient is
    `p_t * (q - onehot) + gamma * T * (q_hat - p_hat)`, `q_hat` and `p_hat`
    0 at the target.

    The loss needs the ground-truth labels: call it as
    `loss(teacher_logits, student_logits, labels=y)`; the `Distiller`
    passes them. Labels are integer classes `(batch,)` or `(batch, 1)`, or
    one-hot rows `(batch, classes)` whose largest entry is the target (the
    reference takes the argmax of such rows too).

    Formula:

    ```python
    p = softmax(teacher_logits)             # q: the student's, both at T=1
    p_hat = softmax(teacher_logits[non-target] / T)   # q_hat: the student's
    loss = (-p[target] * log(q[target])
            - gamma * T**2 * sum(p_hat * log(q_hat)))
    ```

    Args:
        gamma: Weight of the non-target term, `>= 0`. The reference's
            configs use 1.5 (ImageNet CNNs), 1.0 (DeiT) and 3.5 with `T=3`
            (CIFAR-100). Defaults to `1.5`.
        temperature: Softening temperature `T > 0` of the non-target term.
            Defaults to `1.0`.
        reduction: Keras loss reduction. Defaults to
            `"sum_over_batch_size"`.
        name: Name of the loss. Defaults to `"nkd"`.
        dtype: Dtype of the computation. Defaults to `None` (float32).

    Example:

    >>> loss = kd_keras.losses.NKD(gamma=1.5, temperature=1.0)
    >>> # Target 0: the teacher's p_t = 1/2 against the student's 1/3,
    >>> # non-target (1/2, 1/2) for both: 1/2 ln 3 + 1.5 ln 2.
    >>> teacher, student = [[math.log(2.0), 0.0, 0.0]], [[0.0, 0.0, 0.0]]
    >>> round(float(loss(teacher, student, labels=[0])), 4)
    1.589

    References:
        - [Yang et al., 2023](https://arxiv.org/abs/2303.13005)
          (code: https://github.com/yzd-v/cls_KD,
          `mmcls/models/dis_losses/nkd.py`)
    """

    requires_labels = True
    config_names = ("gamma",)

    def __init__(
        self,
        gamma=NKD_GAMMA,
        temperature=NKD_TEMPERATURE,
        reduction="sum_over_batch_size",
        name="nkd",
        dtype=None,
    ):
        super().__init__(nkd, temperature, reduction, name, dtype)
        self.gamma = check_non_negative("gamma", gamma)

    def call(self, y_true, y_pred):
        teacher_logits, labels = y_true
        return self.fn(
            teacher_logits,
            y_pred,
            labels,
            gamma=self.gamma,
            temperature=self._temperature,
        )
