"""Distillation of multi-label (sigmoid) classifiers, one label at a time."""

import keras
from keras import ops

from kd_keras.losses.base import PACKAGE, TemperatureLoss, as_float32


def bernoulli_kl(log_p, log_not_p, log_q, log_not_q):
    """`KL(Bernoulli(p) || Bernoulli(q))`, elementwise, from logarithms.

    Taking `log(p)`, `log(1 - p)`, `log(q)`, `log(1 - q)` instead of `p` and
    `q` keeps saturated probabilities exact: `log(1 - p)` is not rounded
    through `1 - p`.
    """
    return ops.exp(log_p) * (log_p - log_q) + ops.exp(log_not_p) * (
        log_not_p - log_not_q
    )


def multilabel_kd(teacher_logits, student_logits, temperature=1.0):
    """Per-label binary KD of sigmoid logits, averaged over the labels.

    The functional form of `MultiLabelKD`; see `MultiLabelKD` for the
    formula and references.

    Args:
        teacher_logits: Teacher logits, shape `(batch, ..., labels)`.
        student_logits: Student logits, same shape.
        temperature: Softening temperature `T`. Defaults to `1.0`.

    Returns:
        One value per sample.

    Example:

    >>> # sigmoid(ln 3) = 0.75 against 0.5: 0.75 ln 1.5 + 0.25 ln 0.5
    >>> loss = kd_keras.losses.multilabel_kd([[math.log(3.0)]], [[0.0]])
    >>> round(float(loss[0]), 4)
    0.1308
    """
    t, s = as_float32(teacher_logits, student_logits)
    t, s = t / temperature, s / temperature
    kl = bernoulli_kl(
        ops.log_sigmoid(t),
        ops.log_sigmoid(-t),
        ops.log_sigmoid(s),
        ops.log_sigmoid(-s),
    )
    return temperature**2 * ops.mean(kl, axis=-1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class MultiLabelKD(TemperatureLoss):
    """Knowledge distillation for multi-label (sigmoid) classifiers.

    Each label is a binary problem of its own: the student's probability
    `sigmoid(s / T)` matches the teacher's `sigmoid(t / T)` under the binary
    KL divergence, the multi-label logits distillation (MLD) of Yang et al.,
    with Hinton's temperature and `T**2` factor added. The labels are
    averaged rather than summed (as in the reference code), so the value
    and the weight against the hard-label loss do not grow with the number
    of labels; the sum is this value times the number of labels.

    The loss compares logits: a teacher ending in a sigmoid is converted
    to its logits by the `Distiller` (`kd_keras.views.to_logits`).

    Formula:

    ```python
    p = sigmoid(teacher_logits / T)
    q = sigmoid(student_logits / T)
    kl = p * log(p / q) + (1 - p) * log((1 - p) / (1 - q))
    loss = T**2 * mean(kl, axis=-1)
    ```

    Args:
        temperature: Softening temperature `T > 0`. Defaults to `1.0`.
        reduction: Keras loss reduction. Defaults to
            `"sum_over_batch_size"`.
        name: Name of the loss. Defaults to `"multilabel_kd"`.
        dtype: Dtype of the computation. Defaults to `None` (float32).

    Example:

    >>> loss = kd_keras.losses.MultiLabelKD()
    >>> float(loss([[2.0, -1.0]], [[2.0, -1.0]]))  # the same logits
    0.0
    >>> # p = 1/2, q = sigmoid(ln 3) = 3/4: KL = ln(4/3) / 2
    >>> round(float(loss([[0.0]], [[math.log(3.0)]])), 4)
    0.1438

    References:
        - [Yang et al., 2023](https://arxiv.org/abs/2308.06453)
          (code: https://github.com/penghui-yang/L2D)
        - [Hinton et al., 2015](https://arxiv.org/abs/1503.02531)
    """

    # Labels are independent sigmoids, not one softmax.
    softmax_based = False

    def __init__(
        self,
        temperature=1.0,
        reduction="sum_over_batch_size",
        name="multilabel_kd",
        dtype=None,
    ):
        super().__init__(multilabel_kd, temperature, reduction, name, dtype)
