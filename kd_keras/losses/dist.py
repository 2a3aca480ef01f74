"""DIST: distillation by correlation, from a stronger teacher."""

import keras
from keras import ops

from kd_keras.hyperparameters import check_non_negative
from kd_keras.losses.base import (
    PACKAGE,
    TemperatureLoss,
    as_float32_logits,
)

# Added to the product of the norms, as in the reference code, so a
# constant vector has correlation 0 instead of 0 / 0.
_EPSILON = 1e-8


def _norm_product(a, b, axis):
    """`norm(a) * norm(b)` along `axis`, with a zero gradient at 0.

    A centred vector is 0 for a batch of one sample or a class with the
    same probability throughout the batch. There the square root's
    gradient is infinite; eager TensorFlow multiplies it by the zero
    upstream gradient to 0, XLA to NaN. Take it as 0 everywhere.
    """
    squared = ops.sum(ops.square(a), axis=axis) * ops.sum(
        ops.square(b), axis=axis
    )
    positive = squared > 0
    return ops.where(positive, ops.sqrt(ops.where(positive, squared, 1.0)), 0.0)


def _pearson(a, b, axis):
    """Pearson correlation of `a` and `b` along `axis`."""
    a = a - ops.mean(a, axis=axis, keepdims=True)
    b = b - ops.mean(b, axis=axis, keepdims=True)
    return ops.sum(a * b, axis=axis) / (_norm_product(a, b, axis) + _EPSILON)


def dist(
    teacher_logits,
    student_logits,
    beta=1.0,
    gamma=1.0,
    temperature=1.0,
    standardize=False,
):
    """DIST per sample: inter-class plus the batch's intra-class relation.

    The functional form of `DIST`; see `DIST` for the formula and
    references.

    Args:
        teacher_logits: Teacher logits, shape `(batch, ..., classes)`.
        student_logits: Student logits, same shape.
        beta: Weight of the inter-class term. Defaults to `1.0`.
        gamma: Weight of the intra-class term. Defaults to `1.0`.
        temperature: Softening temperature `T` (the paper's `tau`).
            Defaults to `1.0`.
        standardize: Whether to z-score each sample's teacher and student
            logits before the temperature (logit standardisation, see
            `DIST`). Defaults to `False`.

    Returns:
        One value per sample: its inter-class term plus the intra-class
        term of the whole batch (every position of `(batch, ..., classes)`
        outputs counts as a sample).

    Example:

    >>> teacher = [[2.0, 0.0, 1.0], [0.0, 1.0, 3.0]]
    >>> loss = kd_keras.losses.dist(teacher, teacher)  # perfect correlation
    >>> [round(float(v), 4) for v in loss]
    [0.0, 0.0]
    """
    t, s = as_float32_logits(teacher_logits, student_logits, standardize)
    p_t = ops.softmax(t / temperature, axis=-1)
    p_s = ops.softmax(s / temperature, axis=-1)
    inter = 1.0 - _pearson(p_s, p_t, axis=-1)
    classes = p_t.shape[-1]
    intra = 1.0 - ops.mean(
        _pearson(
            ops.reshape(p_s, (-1, classes)),
            ops.reshape(p_t, (-1, classes)),
            axis=0,
        )
    )
    return temperature**2 * (beta * inter + gamma * intra)


@keras.saving.register_keras_serializable(package=PACKAGE)
class DIST(TemperatureLoss):
    """DIST: the student matches the teacher's relations, not its values.

    Instead of the KL divergence, which asks for the teacher's exact
    probabilities, DIST asks for a high Pearson correlation with them,
    which a student much weaker than its teacher can reach. The
    inter-class relation compares each sample's probabilities over the
    classes; the intra-class relation compares each class's probabilities
    over the batch. Both are multiplied by `T**2`, as in the reference
    code; `temperature` is the paper's `tau`.

    The intra-class term couples the samples of a batch: it is one value
    per batch, added to each sample's inter-class value. With the default
    `"sum_over_batch_size"` reduction and no `sample_weight` the loss is
    exactly the batch's DIST loss of the reference code. A `sample_weight`
    weighs each sample's inter-class term and scales the intra-class term
    by the mean weight, but does not enter the correlations: the
    intra-class term is computed over the whole batch (each replica's batch
    under a `tf.distribute` strategy). With `reduction="sum"` the
    intra-class term counts once per sample. The intra-class term needs
    several samples per batch: with one, it is `gamma * T**2` and has no
    gradient.

    Logit standardisation (`standardize=True`, Sun et al. 2024): each
    sample's teacher and student logits are z-scored before the
    temperature, as for `KD`. The authors apply it to KD, DKD, MLKD and
    CTKD; their code has no DIST, so this combination is this library's.

    Formula:

    ```python
    if standardize:  # each sample's logits, along the classes
        z = lambda x: (x - mean(x)) / (1e-7 + std(x, ddof=1))
        teacher_logits, student_logits = z(teacher_logits), z(student_logits)
    p_s = softmax(student_logits / T)   # (batch, classes)
    p_t = softmax(teacher_logits / T)
    inter = 1 - pearson(p_s[i, :], p_t[i, :])            # per sample i
    intra = 1 - mean_c(pearson(p_s[:, c], p_t[:, c]))    # per batch
    loss_i = T**2 * (beta * inter_i + gamma * intra)
    # pearson(a, b) = sum(a' * b') / (norm(a') * norm(b') + 1e-8),
    # with a' = a - mean(a)
    ```

    Args:
        beta: Weight of the inter-class relation, `>= 0`. Defaults to
            `1.0`.
        gamma: Weight of the intra-class relation, `>= 0`. Defaults to
            `1.0`.
        temperature: Softening temperature `T > 0`, the paper's `tau`.
            Defaults to `1.0`.
        reduction: Keras loss reduction. Defaults to
            `"sum_over_batch_size"`.
        name: Name of the loss. Defaults to `"dist"`.
        dtype: Dtype of the computation. Defaults to `None` (float32).
        standardize: Whether to z-score each sample's teacher and student
            logits before the temperature. Defaults to `False`.

    Example:

    >>> loss = kd_keras.losses.DIST()
    >>> teacher = [[2.0, 0.0, 1.0], [0.0, 1.0, 3.0]]
    >>> round(float(loss(teacher, teacher)), 4)  # the same logits
    0.0
    >>> student = [[4.0, 0.0, 2.0], [0.0, 2.0, 6.0]]  # surer, same ranking
    >>> round(float(loss(teacher, student)), 3)
    0.007

    References:
        - [Huang et al., 2022](https://arxiv.org/abs/2205.10536)
          (code: https://github.com/hunto/DIST_KD)
        - [Sun et al., 2024](https://arxiv.org/abs/2403.01427)
          (`standardize`; code:
          https://github.com/sunshangquan/logit-standardization-KD)
    """

    config_names = ("beta", "gamma", "standardize")

    def __init__(
        self,
        beta=1.0,
        gamma=1.0,
        temperature=1.0,
        reduction="sum_over_batch_size",
        name="dist",
        dtype=None,
        standardize=False,
    ):
        super().__init__(
            dist, temperature, reduction, name, dtype, standardize=standardize
        )
        self.beta = check_non_negative("beta", beta)
        self.gamma = check_non_negative("gamma", gamma)

    def call(self, y_true, y_pred):
        return self.fn(
            y_true,
            y_pred,
            beta=self.beta,
            gamma=self.gamma,
            **self.fn_keywords(),
        )
