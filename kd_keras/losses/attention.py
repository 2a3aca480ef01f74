"""Attention transfer: where the student's features are strong."""

import keras
from keras import ops

from kd_keras.hyperparameters import check_number
from kd_keras.losses.base import (
    PACKAGE,
    FeatureLoss,
    as_float32,
    check_spatial,
    flatten,
    l2_normalize,
)


def attention_map(features, p=2.0):
    """Spatial attention map of image features, L2-normalised per sample.

    The map `AttentionTransfer` compares; see `AttentionTransfer` for the
    formula and references.

    Args:
        features: Features of shape `(batch, height, width, channels)`.
        p: Exponent applied to the absolute activations, `>= 1`. Defaults
            to `2.0`.

    Returns:
        The maps, shape `(batch, height * width)`; an all-zero map stays
        zero.

    Example:

    >>> features = np.array([3.0, 4.0]).reshape(1, 1, 2, 1)
    >>> a = kd_keras.losses.attention_map(features, p=1.0)
    >>> [round(float(v), 4) for v in a[0]]  # (3, 4) / 5
    [0.6, 0.8]
    """
    features = ops.cast(features, "float32")
    if len(features.shape) != 4:
        raise ValueError(
            "attention_map needs features of shape (batch, height, width, "
            f"channels). Received: features.shape={features.shape}"
        )
    energy = ops.mean(ops.power(ops.abs(features), p), axis=-1)
    return l2_normalize(flatten(energy))


def _check_p(p):
    p = check_number("p", p)
    if not p >= 1:
        raise ValueError(f"p must be >= 1. Received: p={p}")
    return p


def attention_transfer(teacher_features, student_features, p=2.0):
    """Attention transfer loss, per sample, as in the authors' code.

    The functional form of `AttentionTransfer`; see `AttentionTransfer` for
    the formula and references.

    Args:
        teacher_features: Teacher features `(batch, height, width, c_t)`.
        student_features: Student features `(batch, height, width, c_s)`:
            the same spatial size, any number of channels.
        p: Exponent of the attention maps, `>= 1`. Defaults to `2.0`.

    Returns:
        One value per sample.

    Example:

    >>> teacher = np.array([3.0, 4.0]).reshape(1, 1, 2, 1)
    >>> student = np.array([4.0, 3.0]).reshape(1, 1, 2, 1)
    >>> # maps (0.6, 0.8) and (0.8, 0.6): mean(0.2**2, 0.2**2)
    >>> loss = kd_keras.losses.attention_transfer(teacher, student, p=1.0)
    >>> round(float(loss[0]), 4)
    0.04
    """
    p = _check_p(p)
    teacher, student = as_float32(teacher_features, student_features)
    check_spatial(
        "attention_transfer",
        teacher.shape[1:],
        student.shape[1:],
        "teacher_features",
        "student_features",
    )
    return ops.mean(
        ops.square(attention_map(student, p) - attention_map(teacher, p)),
        axis=-1,
    )


@keras.saving.register_keras_serializable(package=PACKAGE)
class AttentionTransfer(FeatureLoss):
    """Attention transfer: the student matches the teacher's attention maps.

    The attention map of image features is the mean over channels of the
    absolute activations raised to the power `p`, a map of where the
    network "looks". Both maps are flattened and L2-normalised, so only
    their shape is compared: the layers may have different numbers of
    channels and no adapter is needed, but they must have the same height
    and width.

    Normalisation: this is the authors' code, `(at(x) - at(y)).pow(2)
    .mean()`: the squared Euclidean distance of the normalised maps divided
    by the number of positions `height * width`, so with the default
    reduction it is the mean over the batch and the positions, as in their
    code. The paper writes `beta / 2 * || Q_s / ||Q_s|| - Q_t / ||Q_t|| ||`
    with the norm not squared, and sets `beta = 1000` divided by the number
    of positions and the batch size; the authors' code multiplies the loss
    above by `beta = 1000` (their README), not `beta / 2`. This loss has no
    `beta`: weigh it against the other terms of the objective. The paper
    sums `|x|**p` over channels where the code averages; the normalisation
    cancels the difference. The code squares the activations (`p=2`);
    other `p` use `|x|**p` as in the paper.

    Formula:

    ```python
    def at(x):
        q = reshape(mean(abs(x) ** p, axis=-1), (batch, -1))
        return q / max(norm(q, axis=-1), 1e-12)
    loss = mean(square(at(student) - at(teacher)), axis=-1)
    ```

    Args:
        teacher_layer: Name of the teacher layer, or `None` for the
            teacher's output.
        student_layer: Name of the student layer, or `None` for the
            student's output.
        p: Exponent of the attention maps, `>= 1` (`p < 1` has an infinite
            gradient at zero activations). Defaults to `2.0`.
        reduction: Keras loss reduction. Defaults to
            `"sum_over_batch_size"`.
        name: Name of the loss. Defaults to `"attention_transfer"`.
        dtype: Dtype of the computation. Defaults to `None` (float32).

    Example:

    >>> loss = kd_keras.losses.AttentionTransfer("block2", "block2", p=1)
    >>> teacher = [[[[3.0], [4.0]]]]  # 1x2 positions: map [0.6, 0.8]
    >>> student = [[[[4.0], [3.0]]]]  # map [0.8, 0.6]
    >>> round(float(loss(teacher, student)), 6)  # (0.2**2 + 0.2**2) / 2
    0.04

    References:
        - [Zagoruyko & Komodakis, 2017](https://arxiv.org/abs/1612.03928)
    """

    config_names = ("p",)

    def __init__(
        self,
        teacher_layer,
        student_layer,
        p=2.0,
        reduction="sum_over_batch_size",
        name="attention_transfer",
        dtype=None,
    ):
        super().__init__(teacher_layer, student_layer, reduction, name, dtype)
        self.p = _check_p(p)

    def make_adapter(self, teacher_shape, student_shape):
        """Checks that the features can be compared; returns `None`.

        Raises:
            ValueError: The features are not 4-D or differ in spatial size.
        """
        self._check_shapes(teacher_shape, student_shape)
        return None

    def _check_shapes(self, teacher_shape, student_shape):
        self._check_image_features(teacher_shape, student_shape)
        self._check_spatial(teacher_shape, student_shape)

    def call(self, y_true, y_pred):
        y_true, y_pred = as_float32(y_true, y_pred)
        self._check_shapes(y_true.shape[1:], y_pred.shape[1:])
        return attention_transfer(y_true, y_pred, self.p)
