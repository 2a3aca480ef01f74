"""Weighted soft labels: the softened cross-entropy to the teacher, weighted
per sample by how the student's hard-label loss compares with the
teacher's.

Checked against `WSLDistiller` in `knowledge_distiller.py` of
github.com/bellymonster/Weighted-Soft-Label-Distillation, commit
67820dd7c3c733d5331b78b1e66ef8a990391d5e (the authors' code), and against
`WSLDLoss` in `mmcls/models/dis_losses/wsld.py` of github.com/yzd-v/cls_KD,
commit 1e5d48f36957ee460d39d7ebc592c6cc7f8f3d66 (the same formula).
"""

import keras
from keras import ops

from kd_keras.losses.base import PACKAGE, TemperatureLoss, as_float32
from kd_keras.losses.dkd import _target_mask

# The reference's temperature, `WSLDistiller.T` (ImageNet).
WSLD_TEMPERATURE = 2.0
# Added to the teacher's cross-entropy before dividing by it, as in the
# reference.
WSLD_EPSILON = 1e-7


def _hard_crossentropy(logits, mask):
    """`-log softmax(logits)[target]` per sample, without gradient."""
    log_p = ops.log_softmax(ops.stop_gradient(logits), axis=-1)
    return -ops.sum(ops.where(mask, log_p, 0.0), axis=-1)


def wsld_weight(teacher_logits, student_logits, labels):
    """The per-sample weight of `WSLD`, `1 - exp(-ce_student / ce_teacher)`.

    Both cross-entropies are the hard-label ones, at temperature 1. The
    weight is a constant for the gradient; see `WSLD` for the formula and
    references.

    Args:
        teacher_logits: Teacher logits, shape `(batch, classes)`.
        student_logits: Student logits, same shape.
        labels: Integer labels `(batch,)` or `(batch, 1)`, or one-hot
            labels `(batch, classes)`.

    Returns:
        One weight in `[0, 1]` per sample.

    Example:

    >>> # Student and teacher equally good: 1 - exp(-1).
    >>> weight = kd_keras.losses.wsld_weight(
    ...     [[1.0, 0.0]], [[1.0, 0.0]], labels=[1]
    ... )
    >>> round(float(weight[0]), 4)
    0.6321
    """
    t, s = as_float32(teacher_logits, student_logits)
    mask = _target_mask(labels, t)
    ce_student = _hard_crossentropy(s, mask)
    ce_teacher = _hard_crossentropy(t, mask)
    ratio = ops.maximum(ce_student / (ce_teacher + WSLD_EPSILON), 0.0)
    return 1.0 - ops.exp(-ratio)


def wsld(teacher_logits, student_logits, labels, temperature=WSLD_TEMPERATURE):
    """Weighted soft labels: `T**2` times the weighted soft cross-entropy.

    The functional form of `WSLD`; see `WSLD` for the formula and
    references.

    Args:
        teacher_logits: Teacher logits, shape `(batch, classes)`.
        student_logits: Student logits, same shape.
        labels: Integer labels `(batch,)` or `(batch, 1)`, or one-hot
            labels `(batch, classes)`.
        temperature: Softening temperature `T`. Defaults to `2.0`.

    Returns:
        One value per sample.

    Example:

    >>> # Target 0, teacher (3/4, 1/4), student (1/2, 1/2) at T=1:
    >>> # (1 - exp(-ln 2 / ln(4/3))) * ln 2.
    >>> loss = kd_keras.losses.wsld(
    ...     [[math.log(3.0), 0.0]], [[0.0, 0.0]], labels=[0],
    ...     temperature=1.0,
    ... )
    >>> round(float(loss[0]), 4)
    0.6309
    """
    t, s = as_float32(teacher_logits, student_logits)
    p_teacher = ops.softmax(t / temperature, axis=-1)
    log_q_student = ops.log_softmax(s / temperature, axis=-1)
    soft = -ops.sum(p_teacher * log_q_student, axis=-1)
    weight = wsld_weight(t, s, labels)
    return temperature**2 * weight * soft


@keras.saving.register_keras_serializable(package=PACKAGE)
class WSLD(TemperatureLoss):
    """Weighted soft label distillation (WSLD).

    Soft labels regularise the student: they reduce its variance but may
    add bias, and how much varies from sample to sample. WSLD weighs each
    sample's softened cross-entropy to the teacher by
    `1 - exp(-ce_s / ce_t)`, from the student's and the teacher's
    hard-label cross-entropies: close to 0 where the student's loss is
    already much below the teacher's (the teacher's soft label mostly adds
    bias there), close to 1 where it is much above. The weight is computed
    from detached logits at temperature 1: no gradient flows through it.

    As the reference code, the soft term is a cross-entropy, not a KL
    divergence: it differs from KD by the weighted teacher entropy,
    `T**2 * w * H(p)`, a constant for the student (the same gradient,
    `w * T * (q - p)`), so the loss is not 0 when the student equals the
    teacher. The reference also adds `1e-7` to the teacher's
    cross-entropy and clips the ratio at 0. Its `alpha` (2.5 on ImageNet)
    multiplies this loss against the hard-label cross-entropy,
    `ce + alpha * wsld`: it is this loss's weight, e.g.
    `Distiller(alpha=0.5, distillation_loss_weights=[2.5])`, not an
    argument of the loss.

    The loss needs the ground-truth labels: call it as
    `loss(teacher_logits, student_logits, labels=y)`; the `Distiller`
    passes them. Labels are integer classes `(batch,)` or `(batch, 1)`, or
    one-hot rows `(batch, classes)` whose largest entry is the target.

    Formula:

    ```python
    ce_s = -log(softmax(student_logits)[target])    # no gradient
    ce_t = -log(softmax(teacher_logits)[target])
    weight = 1 - exp(-max(ce_s / (ce_t + 1e-7), 0))
    p = softmax(teacher_logits / T)
    log_q = log_softmax(student_logits / T)
    loss = T**2 * weight * -sum(p * log_q)
    ```

    Args:
        temperature: Softening temperature `T > 0`. The reference uses 2.0
            (ImageNet), cls_KD's CIFAR-100 config 4.0. Defaults to `2.0`.
        reduction: Keras loss reduction. Defaults to
            `"sum_over_batch_size"`.
        name: Name of the loss. Defaults to `"wsld"`.
        dtype: Dtype of the computation. Defaults to `None` (float32).

    Example:

    >>> loss = kd_keras.losses.WSLD(temperature=1.0)
    >>> # Same logits: weight 1 - exp(-1), times the teacher's entropy ln 2.
    >>> round(float(loss([[0.0, 0.0]], [[0.0, 0.0]], labels=[0])), 4)
    0.4382

    References:
        - [Zhou et al., 2021](https://arxiv.org/abs/2102.00650)
          (code:
          https://github.com/bellymonster/Weighted-Soft-Label-Distillation,
          `knowledge_distiller.py`)
    """

    requires_labels = True

    def __init__(
        self,
        temperature=WSLD_TEMPERATURE,
        reduction="sum_over_batch_size",
        name="wsld",
        dtype=None,
    ):
        super().__init__(wsld, temperature, reduction, name, dtype)

    def call(self, y_true, y_pred):
        teacher_logits, labels = y_true
        return self.fn(
            teacher_logits, y_pred, labels, temperature=self._temperature
        )
