"""Relational KD: distances and angles between the samples' embeddings."""

import keras
from keras import ops

from kd_keras.hyperparameters import Hyperparameter, check_non_negative
from kd_keras.losses.base import (
    NORM_EPSILON,
    PACKAGE,
    FeatureLoss,
    as_float32,
    flatten,
    l2_normalize,
    smooth_l1,
)


def _pairwise_distances(embeddings):
    """Euclidean distances `(n, n)`, zero on the diagonal.

    Squared distances from the Gram matrix, clamped at `1e-12` before the
    square root as in the reference: off the diagonal they are `>= 1e-6`
    even for equal embeddings, and the gradient stays finite.
    """
    squared_norms = ops.sum(ops.square(embeddings), axis=-1)
    squared = (
        squared_norms[:, None]
        + squared_norms[None, :]
        - 2.0 * ops.matmul(embeddings, ops.transpose(embeddings))
    )
    distances = ops.sqrt(ops.maximum(squared, 1e-12))
    n = ops.shape(embeddings)[0]
    return distances * (1.0 - ops.eye(n, dtype=distances.dtype))


def _normalised_distances(embeddings):
    """Pairwise distances divided by the mean off-diagonal distance."""
    distances = _pairwise_distances(embeddings)
    n = ops.cast(ops.shape(embeddings)[0], distances.dtype)
    pairs = ops.maximum(n * (n - 1.0), 1.0)
    mean = ops.sum(distances) / pairs
    # A batch of one has no pair: its distances stay 0 instead of 0 / 0.
    return distances / ops.maximum(mean, NORM_EPSILON)


def _angles(embeddings):
    """`cos[a, b, c]`: cosine of the angle at `e_a` between `e_b` and `e_c`.

    Zero when `e_b` or `e_c` equals `e_a`, as in the reference.
    """
    directions = l2_normalize(embeddings[None, :, :] - embeddings[:, None, :])
    return ops.matmul(directions, ops.transpose(directions, (0, 2, 1)))


def rkd_distance(teacher_features, student_features):
    """RKD distance term, spread over the samples of the batch.

    The distance term of `RKD`; see `RKD` for the formula and references.

    Args:
        teacher_features: Teacher features `(batch, ...)`, flattened to
            embeddings.
        student_features: Student features `(batch, ...)`, any size.

    Returns:
        One value per sample `i`, over the pairs `(i, j)`; the mean over the
        batch is the reference's value.

    Example:

    >>> # Relations ignore scale and position.
    >>> teacher = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    >>> loss = kd_keras.losses.rkd_distance(teacher, 3.0 * teacher + 1.0)
    >>> [round(float(v), 4) for v in loss]
    [0.0, 0.0, 0.0]
    """
    t, s = as_float32(teacher_features, student_features)
    return ops.mean(
        smooth_l1(
            _normalised_distances(flatten(s))
            - _normalised_distances(flatten(t))
        ),
        axis=-1,
    )


def rkd_angle(teacher_features, student_features):
    """RKD angle term, spread over the samples of the batch.

    The angle term of `RKD`; see `RKD` for the formula and references.

    Args:
        teacher_features: Teacher features `(batch, ...)`, flattened to
            embeddings.
        student_features: Student features `(batch, ...)`, any size.

    Returns:
        One value per sample `a`, over the angles with their vertex at `a`;
        the mean over the batch is the reference's value.

    Example:

    >>> # Relations ignore scale and position.
    >>> teacher = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    >>> loss = kd_keras.losses.rkd_angle(teacher, 3.0 * teacher + 1.0)
    >>> [round(float(v), 4) for v in loss]
    [0.0, 0.0, 0.0]
    """
    t, s = as_float32(teacher_features, student_features)
    return ops.mean(
        smooth_l1(_angles(flatten(s)) - _angles(flatten(t))), axis=(1, 2)
    )


def rkd(
    teacher_features,
    student_features,
    distance_weight=25.0,
    angle_weight=50.0,
):
    """Relational knowledge distillation loss, spread over the samples.

    The functional form of `RKD`; see `RKD` for the formula and references.

    Args:
        teacher_features: Teacher features `(batch, ...)`, flattened to
            embeddings.
        student_features: Student features `(batch, ...)`, any size.
        distance_weight: Weight of `rkd_distance`. Defaults to `25.0`.
        angle_weight: Weight of `rkd_angle`. Defaults to `50.0`.

    Returns:
        One value per sample; the mean over the batch is the reference's
        value.

    Example:

    >>> # Relations ignore scale and position.
    >>> teacher = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    >>> loss = kd_keras.losses.rkd(teacher, 3.0 * teacher + 1.0)
    >>> [round(float(v), 4) for v in loss]
    [0.0, 0.0, 0.0]
    """
    return distance_weight * rkd_distance(
        teacher_features, student_features
    ) + angle_weight * rkd_angle(teacher_features, student_features)


@keras.saving.register_keras_serializable(package=PACKAGE)
class RKD(FeatureLoss):
    """Relational knowledge distillation: the geometry of the batch.

    The student keeps the teacher's relations between the samples of a
    batch. Features are flattened to one embedding per sample. The distance
    term matches the pairwise Euclidean distances between the samples of the
    batch, each side divided by its mean distance over the pairs of
    distinct samples, so only relative distances count and the embeddings
    may differ in size and scale. The angle term matches the cosines of the
    angles formed by every triplet of samples. Both use the smooth L1
    (Huber, `delta=1`) loss. No adapter is needed.

    The terms relate samples, while Keras losses give one value per sample.
    Sample `i` receives the mean over `j` of the distance losses of the
    pairs `(i, j)` and the mean over `(j, k)` of the angle losses of the
    angles with their vertex at `i`; the diagonal (`j == i`, zero on both
    sides) counts as in the reference. The mean over the batch, the default
    `"sum_over_batch_size"` reduction, is then exactly the reference value,
    whose `smooth_l1_loss(reduction="mean")` averages over all `n**2`
    entries of the distance matrix and `n**3` of the angle tensor.
    `sample_weight[i]` weighs the angles with their vertex at sample `i`
    and each pair `(i, j)` with `(w_i + w_j) / 2`; the normalising mean
    distance is the whole batch's whatever the weights. Under a
    distribution strategy, relations are taken within each replica's batch.

    A batch of one sample has no relations: its loss is zero. The
    `Distiller` passes the teacher's features as constants, as the
    reference's `torch.no_grad()`; the value is the same either way. The
    angle term holds `n**2 * d` differences and `n**3` cosines for `n`
    samples of `d` features: give RKD pooled embeddings (e.g. the
    penultimate layer), not large feature maps.

    Formula:

    ```python
    def normalised_distances(e):  # e: (n, d)
        d = norm(e[:, None] - e[None, :], axis=-1)
        return d / (sum(d) / (n * (n - 1)))
    def cosines(e):  # (n, n, n)
        u = l2_normalize(e[None, :] - e[:, None], axis=-1)
        return einsum("abk,ack->abc", u, u)
    distance = mean(smooth_l1(normalised_distances(s)
                              - normalised_distances(t)), axis=1)
    angle = mean(smooth_l1(cosines(s) - cosines(t)), axis=(1, 2))
    loss = distance_weight * distance + angle_weight * angle
    ```

    Args:
        teacher_layer: Name of the teacher layer, or `None` for the
            teacher's output. Defaults to `None`.
        student_layer: Name of the student layer, or `None` for the
            student's output. Defaults to `None`.
        distance_weight: Weight `>= 0` of the distance term, as in
            RepDistiller's `RKDLoss` and the authors' CIFAR classification
            script (their metric-learning runs use `1.0`). Defaults to
            `25.0`.
        angle_weight: Weight `>= 0` of the angle term (`2.0` in the
            authors' metric-learning runs). Defaults to `50.0`.
        reduction: Keras loss reduction. Defaults to
            `"sum_over_batch_size"`.
        name: Name of the loss. Defaults to `"rkd"`.
        dtype: Dtype of the computation. Defaults to `None` (float32).

    Example:

    >>> loss = kd_keras.losses.RKD(distance_weight=1.0, angle_weight=0.0)
    >>> teacher = [[0.0], [1.0], [3.0]]  # distances 1, 3, 2; mean 2
    >>> student = [[0.0], [1.0], [2.0]]  # distances 1, 2, 1; mean 4/3
    >>> round(float(loss(teacher, student)), 6)  # 4 * (0.5 * 0.25**2) / 9
    0.013889

    References:
        - [Park et al., 2019](https://arxiv.org/abs/1904.05068)
    """

    distance_weight = Hyperparameter(check_non_negative)
    angle_weight = Hyperparameter(check_non_negative)
    config_names = ("distance_weight", "angle_weight")

    def __init__(
        self,
        teacher_layer=None,
        student_layer=None,
        distance_weight=25.0,
        angle_weight=50.0,
        reduction="sum_over_batch_size",
        name="rkd",
        dtype=None,
    ):
        super().__init__(teacher_layer, student_layer, reduction, name, dtype)
        self.distance_weight = distance_weight
        self.angle_weight = angle_weight

    def call(self, y_true, y_pred):
        return rkd(
            y_true,
            y_pred,
            distance_weight=self._distance_weight,
            angle_weight=self._angle_weight,
        )
