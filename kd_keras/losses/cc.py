"""Correlation congruence as released: errors of consecutive samples.

The formula is checked against the released code: `Correlation.forward`
in `distiller_zoo/CC.py` of HobbitLong/RepDistiller (commit
b84f547c5db6a35318d4671d7d5c4de74c822403), which the paper's authors shared
with RepDistiller's author; its use (linear embeddings of both networks'
pooled features) against `train_student.py` and `helper/loops.py` of the
same commit. mdistiller has no CC.
"""

import math

import keras
from keras import ops

from kd_keras.losses.base import (
    PACKAGE,
    FeatureLoss,
    as_float32,
    batch_shape,
    flatten,
)
from kd_keras.validation import compatible_shapes


def _size(shape):
    """The number of features per sample, `None` if an axis is unknown."""
    if any(axis is None for axis in shape):
        return None
    return math.prod(shape)


def cc(teacher_features, student_features):
    """Correlation congruence loss of the released code, spread over samples.

    The functional form of `CC`, without its adapter; see `CC` for the
    formula and references.

    Args:
        teacher_features: Teacher embeddings `(batch, ...)`, flattened per
            sample.
        student_features: Student embeddings with as many features per
            sample as the teacher's (mapped to that size by `CC`'s adapter).

    Returns:
        One value per sample `i`, half the terms of the pairs `(i - 1, i)`
        and `(i, i + 1)` scaled by `batch / (batch - 1)`; the mean over the
        batch is the reference's value. Zero for a batch of one.

    Example:

    >>> teacher = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    >>> student = np.array([[2.0, 2.0], [3.0, 6.0], [5.0, 5.0]])
    >>> # |errors| [1, 0], [0, 2], [0, 1]: pair terms 0 and 2.
    >>> loss = kd_keras.losses.cc(teacher, student)
    >>> [round(float(v), 4) for v in loss]  # [0, 0 + 2, 2 + 0] / 2 * 3 / 2
    [0.0, 1.5, 1.5]
    """
    teacher, student = as_float32(teacher_features, student_features)
    t, s = flatten(teacher), flatten(student)
    if not compatible_shapes(t.shape[1:], s.shape[1:]):
        raise ValueError(
            "cc compares embeddings of the same size. Received: "
            f"teacher_features.shape={teacher.shape}, "
            f"student_features.shape={student.shape}"
        )
    errors = ops.abs(s - t)
    pairs = ops.sum(errors[:-1] * errors[1:], axis=-1)  # (batch - 1,)
    # Half of each pair's term to each of its two samples.
    halves = ops.pad(pairs, [(0, 1)]) + ops.pad(pairs, [(1, 0)])
    n = ops.cast(ops.shape(t)[0], "float32")
    return halves / 2.0 * n / ops.maximum(n - 1.0, 1.0)


@keras.saving.register_keras_serializable(package=PACKAGE)
class CC(FeatureLoss):
    """Correlation congruence for KD, as in the released code.

    The paper matches the correlations between the samples of a batch: for
    each network, the `batch x batch` matrix of a Gaussian RBF kernel
    `exp(-gamma * ||f_i - f_j||**2)` between the embeddings, approximated
    by its `P`-order Taylor expansion in the dot products `f_i . f_j`, and
    the loss is the squared distance between the teacher's and the
    student's matrices divided by `batch**2`.

    The released code, which the authors shared with RepDistiller and which
    is followed here, computes a simpler sum instead, with no kernel, no
    Taylor expansion and no `batch x batch` matrix. With `e = |s - t|` the
    elementwise absolute error between the student's and the teacher's
    embeddings, it averages over the `batch - 1` consecutive pairs of
    samples `(i, i + 1)`, in batch order, the dot products `e_i . e_{i+1}`.
    It is zero when the embeddings are equal, and depends on the order of
    the samples in the batch. The embeddings must have the same size: in
    RepDistiller each network's pooled features pass through a trainable
    linear embedding to 128 features (`LinearEmbed`, `--feat_dim`), the
    teacher's trained by this loss together with the student. kd_keras
    trains layers on the student's side only: the teacher's features are
    compared as they are, flattened, and `make_adapter` maps the student's
    to their size by a linear layer when the sizes differ. RepDistiller's
    script weighs the loss by `0.02`.

    The pairs relate samples, while Keras losses give one value per sample.
    Sample `i` receives half of the terms of the pairs `(i - 1, i)` and
    `(i, i + 1)`, times `batch / (batch - 1)`; the mean over the batch, the
    default `"sum_over_batch_size"` reduction, is then exactly the
    reference value. `sample_weight` weighs the pair `(i, i + 1)` with
    `(w_i + w_{i+1}) / 2`. Under a distribution strategy, pairs are taken
    within each replica's batch.

    A batch of one sample has no pair: its loss is zero, where the
    reference's mean over no pair is NaN. The `Distiller` passes the
    teacher's features as constants.

    Formula:

    ```python
    e = abs(reshape(s, (n, -1)) - reshape(t, (n, -1)))
    pairs = sum(e[:-1] * e[1:], axis=1)  # (n - 1,): reference = mean(pairs)
    loss = (pad(pairs, (0, 1)) + pad(pairs, (1, 0))) / 2 * n / (n - 1)
    ```

    Args:
        teacher_layer: Name of the teacher layer, or `None` for the
            teacher's output. Defaults to `None`.
        student_layer: Name of the student layer, or `None` for the
            student's output. Defaults to `None`.
        reduction: Keras loss reduction. Defaults to
            `"sum_over_batch_size"`.
        name: Name of the loss, and prefix of the adapter's name. Defaults
            to `"cc"`.
        dtype: Dtype of the computation. Defaults to `None` (float32).

    Example:

    >>> loss = kd_keras.losses.CC()
    >>> teacher = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    >>> student = [[2.0, 2.0], [3.0, 6.0], [5.0, 5.0]]
    >>> # |errors| [1, 0], [0, 2], [0, 1]: pair terms 0 and 2, mean 1.
    >>> float(loss(teacher, student))
    1.0
    >>> loss.make_adapter((64,), (32,)).name
    'cc_adapter'

    References:
        - [Peng et al., 2019](https://arxiv.org/abs/1904.01802)
    """

    def __init__(
        self,
        teacher_layer=None,
        student_layer=None,
        reduction="sum_over_batch_size",
        name="cc",
        dtype=None,
    ):
        super().__init__(teacher_layer, student_layer, reduction, name, dtype)

    def make_adapter(self, teacher_shape, student_shape):
        """The linear map of the student's features to the teacher's size.

        Args:
            teacher_shape: Shape of the teacher's features without the
                batch axis, e.g. `(64,)`.
            student_shape: Shape of the student's features without the
                batch axis, e.g. `(32,)`.

        Returns:
            `None` when both have as many features per sample, else a layer
            named `f"{name}_adapter"`, already built for `student_shape`: a
            `Dense` layer with the teacher's number of features, after a
            `Flatten` for features of more than one axis.

        Raises:
            ValueError: The teacher's number of features is unknown.
        """
        teacher_size = _size(tuple(teacher_shape))
        student_size = _size(tuple(student_shape))
        if teacher_size is not None and teacher_size == student_size:
            return None
        if teacher_size is None:
            raise ValueError(
                "CC's adapter needs the number of features of "
                f"{self._describe()[0]}. Received: "
                f"teacher_shape={batch_shape(teacher_shape)}"
            )
        name = f"{self.name}_adapter"
        if len(tuple(student_shape)) == 1:
            layer = keras.layers.Dense(teacher_size, name=name)
        else:
            layer = keras.Sequential(
                [keras.layers.Flatten(), keras.layers.Dense(teacher_size)],
                name=name,
            )
        layer.build(batch_shape(student_shape))
        return layer

    def call(self, y_true, y_pred):
        y_true, y_pred = as_float32(y_true, y_pred)
        teacher_size = _size(tuple(y_true.shape[1:]))
        student_size = _size(tuple(y_pred.shape[1:]))
        if None not in (teacher_size, student_size) and (
            teacher_size != student_size
        ):
            raise ValueError(
                "CC compares the teacher's embeddings with the student's "
                "mapped to their size by the adapter, but "
                f"{self._shapes(y_true.shape[1:], y_pred.shape[1:])}. "
                "kd_keras.Distiller applies the adapter of make_adapter(); "
                "called directly, the loss needs the adapted features."
            )
        return cc(y_true, y_pred)
