"""Decoupled knowledge distillation: target and non-target classes apart.

Hinton KD splits exactly into a target-class term (TCKD, a binary KL on the
probability of the true class) and a non-target term (NCKD, a KL among the
other classes) weighted by `1 - p_t`, the teacher's probability of the
other classes. DKD drops that weight and gives each term its own.
"""

import keras
from keras import ops

from kd_keras.hyperparameters import (
    DEFAULT_TEMPERATURE,
    Hyperparameter,
    check_non_negative,
    check_weight,
)
from kd_keras.labels import is_one_hot
from kd_keras.losses.base import (
    PACKAGE,
    TemperatureLoss,
    as_float32_logits,
)
from kd_keras.losses.multilabel import bernoulli_kl


def _target_mask(labels, logits):
    """Boolean mask of each sample's target class, shaped like `logits`.

    `labels` are integer classes, `(batch,)` or `(batch, 1)`, or one-hot
    rows `(batch, classes)`, whose largest entry is the target (so smoothed
    or mixed labels work too).
    """
    labels = ops.convert_to_tensor(labels)
    if is_one_hot(labels.shape, logits.shape):
        labels = ops.argmax(labels, axis=-1)
    indices = ops.reshape(ops.cast(labels, "int32"), ops.shape(logits)[:-1])
    return ops.cast(ops.one_hot(indices, logits.shape[-1]), "bool")


def _decoupled_log_probabilities(logits, mask, temperature):
    """The log-probabilities DKD compares, from softened `logits`.

    Returns `(log_target, log_other, log_non_target)`: `log(p_t)` and
    `log(1 - p_t)`, where `p_t` is the softmax probability of the target
    class, and the log-softmax over the non-target classes alone (its entry
    at the target class is meaningless and must be masked). The target
    class is left out of the non-target softmax exactly, by a `-inf` in the
    log-sum-exp, and `1 - p_t` is never rounded through `p_t`.
    """
    z = logits / temperature
    log_all = ops.logsumexp(z, axis=-1)
    log_rest = ops.logsumexp(ops.where(mask, float("-inf"), z), axis=-1)
    log_target = ops.sum(ops.where(mask, z, 0.0), axis=-1) - log_all
    log_non_target = z - ops.expand_dims(log_rest, -1)
    return log_target, log_rest - log_all, log_non_target


def _decoupled_terms(
    teacher_logits, student_logits, labels, temperature, standardize
):
    """`(tckd, nckd)`, per sample, each multiplied by `T**2`."""
    t, s = as_float32_logits(teacher_logits, student_logits, standardize)
    mask = _target_mask(labels, t)
    t_target, t_other, t_rest = _decoupled_log_probabilities(
        t, mask, temperature
    )
    s_target, s_other, s_rest = _decoupled_log_probabilities(
        s, mask, temperature
    )
    target = bernoulli_kl(t_target, t_other, s_target, s_other)
    # Zero the target entries before `exp`: they may overflow, and an inf
    # there would make the masked-out gradient 0 * inf = NaN.
    t_rest = ops.where(mask, 0.0, t_rest)
    s_rest = ops.where(mask, 0.0, s_rest)
    non_target = ops.sum(
        ops.where(mask, 0.0, ops.exp(t_rest) * (t_rest - s_rest)), axis=-1
    )
    return temperature**2 * target, temperature**2 * non_target


def tckd(
    teacher_logits,
    student_logits,
    labels,
    temperature=DEFAULT_TEMPERATURE,
    standardize=False,
):
    """Target-class KD: binary KL on the probability of the true class.

    The `tckd` term of `DKD`; see `DKD` for the formula and references.

    Args:
        teacher_logits: Teacher logits, shape `(batch, classes)`.
        student_logits: Student logits, same shape.
        labels: Integer labels `(batch,)` or `(batch, 1)`, or one-hot
            labels `(batch, classes)`.
        temperature: Softening temperature `T`. Defaults to `4.0`.
        standardize: Whether to z-score each sample's teacher and student
            logits before the temperature (logit standardisation, see
            `DKD`). Defaults to `False`.

    Returns:
        One value per sample, multiplied by `T**2`.

    Example:

    >>> # With two classes TCKD is all of KD: 0.75 ln 1.5 + 0.25 ln 0.5.
    >>> loss = kd_keras.losses.tckd(
    ...     [[math.log(3.0), 0.0]], [[0.0, 0.0]], labels=[0], temperature=1.0
    ... )
    >>> round(float(loss[0]), 4)
    0.1308
    """
    return _decoupled_terms(
        teacher_logits, student_logits, labels, temperature, standardize
    )[0]


def nckd(
    teacher_logits,
    student_logits,
    labels,
    temperature=DEFAULT_TEMPERATURE,
    standardize=False,
):
    """Non-target-class KD: KL among the classes other than the true one.

    The `nckd` term of `DKD`; see `DKD` for the formula and references.

    Args:
        teacher_logits: Teacher logits, shape `(batch, classes)`.
        student_logits: Student logits, same shape.
        labels: Integer labels `(batch,)` or `(batch, 1)`, or one-hot
            labels `(batch, classes)`.
        temperature: Softening temperature `T`. Defaults to `4.0`.
        standardize: Whether to z-score each sample's teacher and student
            logits before the temperature (logit standardisation, see
            `DKD`). Defaults to `False`.

    Returns:
        One value per sample, multiplied by `T**2`.

    Example:

    >>> # Target 0: among classes 1 and 2 the teacher has (0.75, 0.25),
    >>> # the student (0.5, 0.5), whatever the target logit.
    >>> loss = kd_keras.losses.nckd(
    ...     [[5.0, math.log(3.0), 0.0]], [[0.0, 0.0, 0.0]], labels=[0],
    ...     temperature=1.0,
    ... )
    >>> round(float(loss[0]), 4)
    0.1308
    """
    return _decoupled_terms(
        teacher_logits, student_logits, labels, temperature, standardize
    )[1]


def dkd(
    teacher_logits,
    student_logits,
    labels,
    tckd_weight=1.0,
    nckd_weight=8.0,
    temperature=DEFAULT_TEMPERATURE,
    standardize=False,
):
    """Decoupled KD, `tckd_weight * tckd + nckd_weight * nckd`, per sample.

    The functional form of `DKD`, without its warm-up; see `DKD` for the
    formula and references.

    Args:
        teacher_logits: Teacher logits, shape `(batch, classes)`.
        student_logits: Student logits, same shape.
        labels: Integer labels `(batch,)` or `(batch, 1)`, or one-hot
            labels `(batch, classes)`.
        tckd_weight: Weight of the target-class term, the paper's `alpha`.
            Defaults to `1.0`.
        nckd_weight: Weight of the non-target-class term, the paper's
            `beta`. Defaults to `8.0`.
        temperature: Softening temperature `T`. Defaults to `4.0`.
        standardize: Whether to z-score each sample's teacher and student
            logits before the temperature (logit standardisation, see
            `DKD`). Defaults to `False`.

    Returns:
        One value per sample.

    Example:

    >>> # Teacher (0.2, 0.6, 0.2), student uniform, target 0:
    >>> # tckd = 0.2 ln 0.6 + 0.8 ln 1.2 = 0.0437, nckd = 0.1308.
    >>> loss = kd_keras.losses.dkd(
    ...     [[0.0, math.log(3.0), 0.0]], [[0.0, 0.0, 0.0]], labels=[0],
    ...     tckd_weight=1.0, nckd_weight=8.0, temperature=1.0,
    ... )
    >>> round(float(loss[0]), 4)
    1.0902
    """
    target, non_target = _decoupled_terms(
        teacher_logits, student_logits, labels, temperature, standardize
    )
    return tckd_weight * target + nckd_weight * non_target


@keras.saving.register_keras_serializable(package=PACKAGE)
class DKD(TemperatureLoss):
    """Decoupled knowledge distillation (DKD).

    Hinton KD is `TCKD + (1 - p_t) * NCKD`: a binary KL on the probability
    of the true class (TCKD) plus a KL among the other classes (NCKD),
    weighted by the teacher's probability `1 - p_t` of the other classes.
    The better the teacher, the smaller that weight, which suppresses the
    "dark knowledge" in NCKD. DKD weighs the two terms independently,
    `alpha * TCKD + beta * NCKD` in the paper, `tckd_weight` and
    `nckd_weight` here (the `Distiller`'s `alpha` is the hard-label
    weight). Both terms carry the `T**2` factor, as in the reference code.

    Logit standardisation (`standardize=True`, Sun et al. 2024): each
    sample's teacher and student logits are z-scored before the
    temperature, as in the authors' DKD (see `KD`); their runs use `T=2`
    and multiply both weights by 9.

    The loss needs the ground-truth labels: call it as
    `loss(teacher_logits, student_logits, labels=y)`; the `Distiller`
    passes them. Labels are integer classes `(batch,)` or `(batch, 1)`, or
    one-hot rows `(batch, classes)` whose largest entry is the target.

    Warm-up: the loss is multiplied by `warmup_scale`, which
    `on_epoch_begin(epoch)` (epochs counted from 0, as Keras does) sets to
    `min((epoch + 1) / warmup, 1)`: `1 / warmup` in the first epoch, the
    full loss from epoch `warmup - 1` on, as in the reference code.
    `warmup=0` turns the warm-up off. Before any `on_epoch_begin`, as when
    the loss is called by hand, and after training (`on_train_end`), so
    that `evaluate` reports it, `warmup_scale` is 1: the full DKD value.
    `warmup_scale` lives in a variable, so the compiled training step
    follows it without retracing, and is training state, not configuration:
    `get_config` leaves it out.

    Formula:

    ```python
    if standardize:  # each sample's logits, along the classes
        z = lambda x: (x - mean(x)) / (1e-7 + std(x, ddof=1))
        teacher_logits, student_logits = z(teacher_logits), z(student_logits)
    p = softmax(teacher_logits / T)         # q: the student's
    p_t = p[target]                         # q_t: the student's
    p_hat = softmax(teacher_logits[non-target] / T)   # q_hat: the student's
    tckd = T**2 * (p_t * log(p_t / q_t)
                   + (1 - p_t) * log((1 - p_t) / (1 - q_t)))
    nckd = T**2 * sum(p_hat * log(p_hat / q_hat))
    loss = warmup_scale * (tckd_weight * tckd + nckd_weight * nckd)
    ```

    Args:
        tckd_weight: Weight of the target-class term, `>= 0`, the paper's
            `alpha`. Defaults to `1.0`.
        nckd_weight: Weight of the non-target-class term, `>= 0`, the
            paper's `beta`. Defaults to `8.0`.
        temperature: Softening temperature `T > 0`. Defaults to `4.0`.
        warmup: Number of epochs over which the loss grows linearly to its
            full value, `>= 0`; 0 means no warm-up. Defaults to `20`.
        reduction: Keras loss reduction. Defaults to
            `"sum_over_batch_size"`.
        name: Name of the loss. Defaults to `"dkd"`.
        dtype: Dtype of the computation. Defaults to `None` (float32).
        standardize: Whether to z-score each sample's teacher and student
            logits before the temperature. Defaults to `False`.

    Example:

    >>> loss = kd_keras.losses.DKD(temperature=1.0)
    >>> logits = [[2.0, 0.0, 1.0]]
    >>> float(loss(logits, logits, labels=[0]))  # the same logits
    0.0
    >>> loss.on_epoch_begin(0)  # as Distiller.fit does
    >>> loss.warmup_scale  # 1 / warmup
    0.05

    References:
        - [Zhao et al., 2022](https://arxiv.org/abs/2203.08679)
          (code: https://github.com/megvii-research/mdistiller)
        - [Sun et al., 2024](https://arxiv.org/abs/2403.01427)
          (`standardize`; code:
          https://github.com/sunshangquan/logit-standardization-KD)
    """

    requires_labels = True
    warmup_scale = Hyperparameter(check_weight)
    config_names = ("tckd_weight", "nckd_weight", "warmup", "standardize")

    def __init__(
        self,
        tckd_weight=1.0,
        nckd_weight=8.0,
        temperature=DEFAULT_TEMPERATURE,
        warmup=20,
        reduction="sum_over_batch_size",
        name="dkd",
        dtype=None,
        standardize=False,
    ):
        super().__init__(
            dkd, temperature, reduction, name, dtype, standardize=standardize
        )
        self.tckd_weight = check_non_negative("tckd_weight", tckd_weight)
        self.nckd_weight = check_non_negative("nckd_weight", nckd_weight)
        self.warmup = check_non_negative("warmup", warmup)
        self.warmup_scale = 1.0

    def on_epoch_begin(self, epoch):
        """Sets `warmup_scale` for epoch `epoch` (counted from 0)."""
        self.warmup_scale = (
            min((epoch + 1) / self.warmup, 1.0) if self.warmup else 1.0
        )

    def on_train_end(self):
        """Back to the full loss, which `evaluate` then reports."""
        self.warmup_scale = 1.0

    def call(self, y_true, y_pred):
        teacher_logits, labels = y_true
        return self._warmup_scale * self.fn(
            teacher_logits,
            y_pred,
            labels,
            tckd_weight=self.tckd_weight,
            nckd_weight=self.nckd_weight,
            **self.fn_keywords(),
        )
